#include "threadpool.h"

#include <algorithm>
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

struct Job {
  int64_t n = 0, grain = 1, chunks = 0;
  RangeFn fn = nullptr;
  void* ctx = nullptr;
  int maxSlots = 1;
  std::atomic<int64_t> next{0};   // next chunk to claim
  std::atomic<int> slots{1};      // participants so far (the caller is slot 0)
  int64_t doneChunks = 0;         // guarded by the pool mutex
  int inside = 0;                 // workers currently inside, guarded by the mutex
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
    }
    const int helpers = std::min<int64_t>(job.maxSlots - 1, job.chunks - 1);
    for (int i = 0; i < helpers; ++i) cv_.notify_one();
    work(job, 0);
    std::unique_lock<std::mutex> lk(mu_);
    // Unlist the job so no new worker enters, then wait for those inside.
    auto it = std::find(queue_.begin(), queue_.end(), &job);
    if (it != queue_.end()) queue_.erase(it);
    doneCv_.wait(lk, [&] { return job.inside == 0 && job.doneChunks == job.chunks; });
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
      int64_t c = job.next.fetch_add(1);
      if (c >= job.chunks) return;
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
      std::lock_guard<std::mutex> lk(mu_);
      if (++job.doneChunks == job.chunks) doneCv_.notify_all();
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      Job* job = nullptr;
      cv_.wait(lk, [&] {
        if (stop_) return true;
        for (Job* j : queue_) {
          if (j->next.load() < j->chunks && j->slots.load() < j->maxSlots) {
            job = j;
            return true;
          }
        }
        return false;
      });
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

  const int max_;
  std::atomic<int> active_;
  std::once_flag started_;
  std::mutex mu_;
  std::condition_variable cv_, doneCv_;
  std::deque<Job*> queue_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
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
