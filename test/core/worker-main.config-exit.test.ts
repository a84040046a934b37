/** A bad configuration stops the worker process at start-up: exit 78 (EX_CONFIG), naming the variable. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

it('the worker exits 78 and names the variable when a setting is invalid', async () => {
  const main = join(__dirname, '..', '..', 'apps', 'worker', 'dist', 'main.js');
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH ?? '', JOB_ATTEMPTS: 'many' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('exit', (c) => resolve({ code: c, stderr: err }));
  });
  expect(code).toBe(78);
  expect(stderr).toMatch(/^scribe-worker: .*JOB_ATTEMPTS/s);
});
