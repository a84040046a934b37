/**
 * Key redaction for everything a provider client puts in an error message: server text (close
 * reasons, error frames, HTTP bodies) and socket errors may quote the request, and with it the key.
 */

/** Replace every occurrence of a secret with `mask` (default `***`); empty secrets are skipped. */
export function redact(text: string, secrets: readonly string[] = [], mask = '***'): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join(mask);
  return out;
}
