#!/usr/bin/env node
// The obvious alternative to a worker, for bench/throughput.js: a plain script doing, per file, the
// same S3 GET → provider request (the body piped into `http.request`) → output PUTs, at a fixed
// concurrency, with no queue, limiter, books or telemetry. Run as its own process:
//   node bench/plain-pipeline.js '{"endpoint":…,"bucket":…,"keys":[…],"providerUrl":…,"apiKey":…,"concurrency":50}'
// Prints one JSON line: { jobs, firstDoneMs, lastDoneMs, jobsPerSecond }.
'use strict';
const http = require('node:http');
const { S3Client, GetObjectCommand, PutObjectCommand } = require('@aws-sdk/client-s3');

async function main() {
  const o = JSON.parse(process.argv[2]);
  const s3 = new S3Client({ endpoint: o.endpoint, region: o.region, forcePathStyle: true, credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey } });
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const post = (body) =>
    new Promise((resolve, reject) => {
      const req = http.request(`${o.providerUrl}/v1/listen?model=nova-3`, { method: 'POST', agent, headers: { authorization: `Token ${o.apiKey}`, 'content-type': 'audio/wav' } }, (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(parts).toString('utf8')) : reject(new Error(`HTTP ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('error', reject);
      body.on('error', reject);
      body.pipe(req);
    });
  const done = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (next < o.keys.length) {
        const key = o.keys[next++];
        const { Body } = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }));
        const json = await post(Body);
        const base = `plain/${key.replace(/\.wav$/, '')}`;
        const text = JSON.parse(json).results?.channels?.[0]?.alternatives?.[0]?.transcript ?? '';
        await Promise.all(
          [['json', json], ['txt', text], ['srt', text], ['vtt', `WEBVTT\n\n${text}`]].map(([ext, body]) => s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: `${base}.${ext}`, Body: body }))),
        );
        done.push(performance.now() - t0);
      }
    }),
  );
  done.sort((a, b) => a - b);
  const first = done[0];
  const last = done[done.length - 1];
  console.log(JSON.stringify({ jobs: done.length, firstDoneMs: first, lastDoneMs: last, jobsPerSecond: (done.length - 1) / ((last - first) / 1000) }));
  agent.destroy();
  s3.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
