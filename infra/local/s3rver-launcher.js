'use strict';
// Runs s3rver in its own process; started by src/services.ts as
//
//   node --openssl-legacy-provider s3rver-launcher.js '{"port":1234,"address":"127.0.0.1","directory":"/tmp/x","buckets":["a"]}'
//
// --openssl-legacy-provider is required: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with
// DES, which OpenSSL 3 only ships in its legacy provider, so without the flag every listing that needs
// a second page (> 1000 keys) fails with HTTP 500.
//
// Prints `S3RVER_READY <port>` on stdout once it listens. With "watchStdin": true it exits when its
// stdin closes, i.e. when the parent that holds the other end of the pipe dies (even by SIGKILL).
const fs = require('node:fs');
const S3rver = require('s3rver');

const opts = JSON.parse(process.argv[2] || '{}');
fs.mkdirSync(opts.directory, { recursive: true });

const server = new S3rver({
  port: opts.port,
  address: opts.address || '127.0.0.1',
  directory: opts.directory,
  silent: true,
  configureBuckets: (opts.buckets || []).map((name) => ({ name })),
});

server.run().then(
  (addr) => process.stdout.write(`S3RVER_READY ${addr.port}\n`),
  (err) => {
    process.stderr.write(`s3rver failed to start: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);

if (opts.watchStdin) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
