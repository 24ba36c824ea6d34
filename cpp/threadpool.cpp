#include "threadpool.h"

#include <algorithm>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "bln.h"

namespace bln {
namespace {

// How long a worker that ran out of work spins for the next job before sleeping (BLN_SPIN_US). At
// 50 us, a caller's own work between two calls (allocating outputs, a copy of the input) often
// outlasted the spin, and the next call began with a wake-up: in a loop of the benchmark grid's calls
// at [25,14,14,6], two threads, forward with out took 22.2-22.7 us (median) at 50 and 19.7-20.4 at
// 300 (p90 28.9-33.8 against 25.4-25.9). (libgomp's default spin before a worker sleeps is of the
// same order.)
constexpr int64_t kDefaultSpinUs = 300;

// A job's chunks are split into one contiguous range per participant slot: slot s claims from
// range s first (so across calls each thread gets the same part of the tensor, and data that
// fits in a core's L2 stays there), then from the others (so no chunk waits for a thread that
// never came).
constexpr int kMaxRanges = 16;
struct alignas(64) Cursor {
  std::atomic<int64_t> next{0};
  int64_t end = 0;
};
struct Job {
  int64_t n = 0, grain = 1, chunks = 0;
  RangeFn fn = nullptr;
  void* ctx = nullptr;
  int maxSlots = 1;
  int ranges = 1;
  Cursor range[kMaxRanges];
  void split() {
    ranges = static_cast<int>(std::min<int64_t>({int64_t(maxSlots), int64_t(kMaxRanges), std::max<int64_t>(1, chunks)}));
    for (int r = 0; r < ranges; ++r) {
      range[r].next.store(chunks * r / ranges, std::memory_order_relaxed);
      range[r].end = chunks * (r + 1) / ranges;
    }
  }
  // The next chunk for `slot`, or -1 when none is left.
  int64_t claim(int slot) {
    for (int k = 0; k < ranges; ++k) {
      Cursor& c = range[(slot + k) % ranges];
      if (c.next.load(std::memory_order_relaxed) >= c.end) continue;
      const int64_t i = c.next.fetch_add(1);
      if (i < c.end) return i;
    }
    return -1;
  }
  bool unclaimed() const {
    for (int r = 0; r < ranges; ++r)
      if (range[r].next.load() < range[r].end) return true;
    return false;
  }
  std::atomic<int> slots{1};      // participants so far (the caller is slot 0)
  // Chunks finished, and workers currently inside (changed under the pool mutex, which they
  // leave last: once both are complete no worker touches the job again). Atomics, so that the
  // caller can spin on them before it sleeps.
  std::atomic<int64_t> doneChunks{0};
  std::atomic<int> inside{0};
  bool finished() const { return inside.load() == 0 && doneChunks.load() == chunks; }
  std::exception_ptr error;       // guarded by the mutex
  std::atomic<bool> failed{false};
};

int envThreads() {
  unsigned hw = std::thread::hardware_concurrency();
  int n = hw ? static_cast<int>(hw) : 1;
  if (const char* s = std::getenv("BLN_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end != s && *end == '\0' && v >= 1) n = std::min<long>(n, v);
  }
  return std::max(1, std::min(n, 256));
}

class Pool {
 public:
  Pool() : max_(envThreads()), active_(max_) {}
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int maxThreads() const { return max_; }
  int active() const { return active_.load(); }
  void setActive(int n) { active_.store(std::max(1, std::min(n, max_))); }

  void run(Job& job) {
    ensureWorkers();
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(&job);
      posted_.fetch_add(1, std::memory_order_release);
    }
    const int helpers = std::min<int64_t>(job.maxSlots - 1, job.chunks - 1);
    for (int i = 0; i < helpers; ++i) cv_.notify_one();
    work(job, 0);
    // The workers still inside usually finish within microseconds: wait for them spinning
    // first, as they wait for jobs (a sleep and a wake-up can cost more than a small call).
    spinUntil([&] { return job.finished(); });
    std::unique_lock<std::mutex> lk(mu_);
    // Unlist the job so no new worker enters, then wait for those inside.
    auto it = std::find(queue_.begin(), queue_.end(), &job);
    if (it != queue_.end()) queue_.erase(it);
    doneCv_.wait(lk, [&] { return job.finished(); });
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  void ensureWorkers() {
    std::call_once(started_, [this] {
      for (int i = 1; i < max_; ++i) workers_.emplace_back([this] { loop(); });
    });
  }

  // Claims chunks of `job` until none is left.
  void work(Job& job, int slot) {
    for (;;) {
      const int64_t c = job.claim(slot);
      if (c < 0) return;
      if (!job.failed.load(std::memory_order_relaxed)) {
        int64_t b = c * job.grain, e = std::min(job.n, b + job.grain);
        try {
          job.fn(job.ctx, b, e, slot);
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu_);
          if (!job.error) job.error = std::current_exception();
          job.failed.store(true);
        }
      }
      // (the caller may sleep on doneCv_ for the last chunk: that notify goes under the mutex)
      if (job.doneChunks.fetch_add(1) + 1 == job.chunks) {
        std::lock_guard<std::mutex> lk(mu_);
        doneCv_.notify_all();
      }
    }
  }

  // Waits for a job: first spinning for up to spinNs() on the count of posted jobs (a worker
  // that just finished is then there for the next call without a wake-up, which on a VM can
  // cost as much as a small call itself), then asleep on the condition variable.
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      Job* job = nullptr;
      auto ready = [&] {
        if (stop_) return true;
        for (Job* j : queue_) {
          if (j->unclaimed() && j->slots.load() < j->maxSlots) {
            job = j;
            return true;
          }
        }
        return false;
      };
      if (!ready()) {
        const uint64_t seen = posted_.load(std::memory_order_acquire);
        lk.unlock();
        spinUntil([&] { return posted_.load(std::memory_order_acquire) != seen; });
        lk.lock();
        cv_.wait(lk, ready);
      }
      if (stop_) return;
      int slot = job->slots.fetch_add(1);
      if (slot >= job->maxSlots) continue;
      ++job->inside;
      lk.unlock();
      work(*job, slot);
      lk.lock();
      if (--job->inside == 0) doneCv_.notify_all();
    }
  }
  // Spins until done() or for spinNs(), whichever comes first.
  template <class Done>
  static void spinUntil(Done done) {
    const int64_t ns = spinNs();
    if (ns <= 0) return;
    const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
    for (int i = 1;; ++i) {
      if (done()) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= end) return;
    }
  }
  static int64_t spinNs() {
    static const int64_t ns = [] {
      const char* s = std::getenv("BLN_SPIN_US");
      return int64_t(s ? std::atoll(s) : kDefaultSpinUs) * 1000;
    }();
    return ns;
  }

  const int max_;
  std::atomic<int> active_;
  std::once_flag started_;
  std::mutex mu_;
  std::condition_variable cv_, doneCv_;
  std::deque<Job*> queue_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  std::atomic<uint64_t> posted_{0};  // jobs posted so far (what spinning workers watch)
};

Pool& pool() {
  // Leaked on purpose: worker threads must not be joined during static destruction
  // of a process that is exiting from inside a callback.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void parallelRun(int64_t n, int64_t grain, int maxSlots, RangeFn fn, void* ctx) {
  Job job;
  job.n = n;
  job.grain = std::max<int64_t>(1, grain);
  job.chunks = (n + job.grain - 1) / job.grain;
  job.fn = fn;
  job.ctx = ctx;
  job.maxSlots = std::max(1, maxSlots);
  job.split();
  pool().run(job);
}

int maxThreads() { return pool().maxThreads(); }
int activeThreads() { return pool().active(); }
void setThreads(int n) {
  if (n < 1 || n > pool().maxThreads())
    throw ArgumentError("threads must be between 1 and " + std::to_string(pool().maxThreads()));
  pool().setActive(n);
}

}  // namespace bln
