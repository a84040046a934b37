import type { Config } from '../../domain/config';
import type { Provider } from '../../ports/provider';
import { LocalProvider } from '../local-provider';
import { AssemblyAIProvider } from './assemblyai';
import { DeepgramProvider } from './deepgram';
import { FireworksProvider } from './fireworks';
import { OpenAIProvider } from './openai';

/**
 * The providers a worker can run: the embedded recogniser always, each hosted one when its key is
 * configured. Keys come from configuration only (environment or SCRIBE_SECRETS_FILE), never from jobs.
 */
export function createProviders(config: Config): Record<string, Provider> {
  const chunkMs = config.STREAM_CHUNK_MS;
  // Streams' finalize handshakes wait while the provider makes progress (shared/finalize-wait withinProgress).
  const finalize = { finalizeIdleMs: config.FINALIZE_IDLE_MS, finalizeMsPerAudioSecond: config.FINALIZE_MS_PER_AUDIO_SECOND };
  const providers: Record<string, Provider> = { local: new LocalProvider({ chunkMs }) };
  if (config.DEEPGRAM_API_KEY) {
    providers.deepgram = new DeepgramProvider({ apiKey: config.DEEPGRAM_API_KEY, baseUrl: config.DEEPGRAM_URL, batchBody: config.DEEPGRAM_BATCH_BODY, timeoutMs: config.PROVIDER_TIMEOUT_MS, chunkMs, ...finalize });
  }
  if (config.ASSEMBLYAI_API_KEY) {
    providers.assemblyai = new AssemblyAIProvider({ apiKey: config.ASSEMBLYAI_API_KEY, baseUrl: config.ASSEMBLYAI_STREAMING_URL, chunkMs: Math.max(50, chunkMs), ...finalize });
  }
  if (config.FIREWORKS_API_KEY) {
    providers.fireworks = new FireworksProvider({ apiKey: config.FIREWORKS_API_KEY, baseUrl: config.FIREWORKS_STREAMING_URL, chunkMs: Math.min(400, Math.max(50, chunkMs)), ...finalize });
  }
  if (config.OPENAI_API_KEY) {
    providers.openai = new OpenAIProvider({ apiKey: config.OPENAI_API_KEY, baseUrl: config.OPENAI_BASE_URL, timeoutMs: config.PROVIDER_TIMEOUT_MS });
  }
  return providers;
}
