/** Sending one webhook delivery over HTTP (the worker's webhook queue runs it, with BullMQ's retries). */
import { signWebhook } from '../../app/webhooks';

/** POST one webhook: signed body, 10 s timeout; a non-2xx answer throws (BullMQ retries with backoff). */
export async function deliverWebhook(secret: string, url: string, body: unknown, attempt: number, deliveryId?: string): Promise<{ status: number }> {
  const text = JSON.stringify(body);
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-scribe-signature': signWebhook(secret, text),
      'x-scribe-event': String((body as { event?: string }).event ?? ''),
      'x-scribe-attempt': String(attempt),
      ...(deliveryId ? { 'x-scribe-delivery': deliveryId } : {}),
    },
    body: text,
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status >= 300) throw new Error(`webhook ${new URL(url).host} answered HTTP ${res.status}`);
  return { status: res.status };
}
