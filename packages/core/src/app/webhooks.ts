/**
 * Webhooks as the use cases see them: queue a signed event's deliveries (sent, with retries, by the
 * worker's webhook queue: adapters/webhooks/http-delivery.ts), list a batch's deliveries, and the
 * signature itself.
 */
import { createHash, createHmac } from 'node:crypto';
import type { WebhookDelivery, WebhookEvent } from '../ports/job-queue';
import { nowIso, type BatchDeps } from './deps';
import { assertBatchId, deliveriesPaging } from './validate';

export type { WebhookDelivery, WebhookEvent } from '../ports/job-queue';

/** Sign a webhook body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (replay-resistant). */
export function signWebhook(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** The delivery id of an event to a URL: the same inputs, the same id (so queuing it again adds nothing). */
export function webhookDeliveryId(event: WebhookEvent, owner: string | undefined, dedupe: string, url: string): string {
  return `wh-${createHash('sha256').update(`${event}|${owner ?? ''}|${dedupe}|${url}`).digest('hex').slice(0, 32)}`;
}

/**
 * Queue one delivery per configured URL (the batch's and WEBHOOK_URL); deliveries retry with
 * backoff. The delivery id (the BullMQ job id, sent as `x-scribe-delivery`) is derived from
 * `dedupe` (job + life + redrive generation, or batch + run), the event and the URL, so queuing the
 * same event again adds nothing and a receiver that sees an id twice knows it is the same event.
 */
export async function queueWebhook(
  deps: Pick<BatchDeps, 'config' | 'outbox' | 'clock'>,
  event: WebhookEvent,
  payload: Record<string, unknown>,
  opts: { batchUrl?: string | undefined; batchId?: string; dedupe: string },
): Promise<void> {
  const { config } = deps;
  const urls = [...new Set([opts.batchUrl, config.WEBHOOK_URL].filter((u): u is string => Boolean(u)))];
  if (!urls.length || !config.WEBHOOK_SECRET) return;
  const body = { event, createdAt: nowIso(deps), data: payload };
  const owner = opts.batchId ?? (typeof payload.batchId === 'string' ? payload.batchId : undefined);
  for (const url of urls) {
    // Indexed under its batch (by the outbox), so its status can be listed without scanning the queue.
    await deps.outbox.enqueue({ id: webhookDeliveryId(event, owner, opts.dedupe, url), event, url, body, ...(owner ? { batchId: owner } : {}) });
  }
}

/**
 * Deliveries of a batch's webhooks, newest first: `pending` (waiting), `delivering` (being sent),
 * `retrying` (an attempt failed, the next one is scheduled), `delivered`, `failed` (attempts used
 * up), or `expired` (removed from Redis after its retention).
 */
export async function webhookDeliveries(deps: Pick<BatchDeps, 'outbox'>, batchId: string, opts: { offset?: number; limit?: number } = {}): Promise<{ total: number; deliveries: WebhookDelivery[] }> {
  assertBatchId(batchId);
  const { offset, limit } = deliveriesPaging(opts);
  return deps.outbox.deliveries(batchId, offset, limit);
}
