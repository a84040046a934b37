/** What a completed transcription job returns (kept by the queue as the job's result). */
export interface JobResult {
  outputs: Record<string, string>;
  bucket: string;
  duration: number;
  sha256: string;
  requestId: string;
  words: number;
  finalResults: number;
  provider: string;
  model: string;
  mode: string;
  /** Completed, but with something to know: `NO_SPEECH` (no words at all), `TRUNCATED_INPUT` (allowed by ALLOW_TRUNCATED). */
  warnings?: string[];
}
