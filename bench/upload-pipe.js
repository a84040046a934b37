// The plain alternative of the memory scenario: one S3 GET (AWS SDK v3) piped into one `http.request`
// POST, nothing else. Run as its own process so its RSS is measured the way the worker's is:
//   node bench/upload-pipe.js <bucket> <key> <url> [header=value ...]
// with the S3 coordinates in S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY. Prints one
// JSON line: {status, bytes, rssBeforeBytes, peakRssBytes, growthBytes} (peak = VmHWM).
'use strict';
const http = require('node:http');
const https = require('node:https');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { pipeline } = require('node:stream/promises');

// The AWS SDK the core package uses (npm workspaces hoist it to the root node_modules).
const { S3Client, GetObjectCommand } = require(require.resolve('@aws-sdk/client-s3', { paths: [join(__dirname, '..', 'packages', 'core')] }));

/** A field of /proc/self/status in bytes (VmRSS, VmHWM). */
function procStatus(field, pid = 'self') {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function pipeUpload({ bucket, key, url, headers = {} }) {
  const client = new S3Client({
    region: process.env.S3_REGION || 'us-east-1',
    endpoint: process.env.S3_ENDPOINT,
    forcePathStyle: true,
    credentials: { accessKeyId: process.env.S3_ACCESS_KEY_ID, secretAccessKey: process.env.S3_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const rssBeforeBytes = procStatus('VmRSS');
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const target = new URL(url);
  let bytes = 0;
  const answer = await new Promise((resolve, reject) => {
    const req = (target.protocol === 'https:' ? https : http).request(target, {
      method: 'POST',
      headers: { 'content-type': res.ContentType || 'application/octet-stream', 'content-length': String(res.ContentLength), ...headers },
    });
    req.on('response', (r) => {
      const parts = [];
      r.on('data', (d) => parts.push(d));
      r.on('end', () => resolve({ status: r.statusCode, body: Buffer.concat(parts).toString('utf8') }));
      r.on('error', reject);
    });
    req.on('error', reject);
    res.Body.on('data', (d) => (bytes += d.length));
    pipeline(res.Body, req).catch(reject);
  });
  client.destroy();
  const peakRssBytes = procStatus('VmHWM');
  return { status: answer.status, bytes, rssBeforeBytes, peakRssBytes, growthBytes: peakRssBytes - rssBeforeBytes, body: answer.body.slice(0, 200) };
}

module.exports = { pipeUpload, procStatus };

if (require.main === module) {
  const [bucket, key, url, ...rest] = process.argv.slice(2);
  const headers = Object.fromEntries(rest.map((h) => [h.slice(0, h.indexOf('=')), h.slice(h.indexOf('=') + 1)]));
  pipeUpload({ bucket, key, url, headers }).then(
    (r) => {
      console.log(JSON.stringify(r));
      process.exit(r.status === 200 ? 0 : 1);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
