// The BatchLayerNormalization layer, blnCallback, setInferenceConfig and searchInferenceConfig on the cpu backend.
import { layerSuite } from './tfjs-suites';

layerSuite('cpu');
