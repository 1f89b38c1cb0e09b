/**
 * The README's TypeScript and the examples compile as a user writes them:
 * importing `from 'wshub'`, resolved through the package's `exports` to the
 * built `dist/` (run `npm run build` first; `npm test` does).
 *
 * The README's rule: its ```ts blocks, pasted in order into one file, form
 * one ES module that compiles with `strict` on. They are checked in a
 * throwaway project outside the repository whose `node_modules/wshub` links
 * to it, as an installed dependency would be. The examples are checked where
 * they are, where `'wshub'` resolves by the package's self-reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '../..');
const tscBin = createRequire(import.meta.url).resolve('typescript/bin/tsc');

interface Snippet {
  /** 1-based line of the block's first code line in README.md. */
  line: number;
  code: string;
}

/** Every fenced block whose info string is `ts` or `typescript`, in order. */
function tsBlocks(markdown: string): Snippet[] {
  const blocks: Snippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)\s*$/.exec(lines[i] ?? '');
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? '')) end++;
    assert.ok(end < lines.length, `README.md:${start}: unterminated code block`);
    blocks.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

/** What a user's project would set: strict ESM TypeScript on Node. */
function compilerOptions(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2023'],
    types: ['node'],
    typeRoots: [join(repo, 'node_modules/@types')],
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    ...extra,
  };
}

function tsc(project: string): { status: number | null; output: string } {
  const run = spawnSync(process.execPath, [tscBin, '-p', project, '--pretty', 'false'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test('the package is built, so `wshub` resolves to dist/', () => {
  assert.ok(
    existsSync(join(repo, 'dist/index.d.ts')) && existsSync(join(repo, 'dist/index.js')),
    'dist/ is missing: run `npm run build` first',
  );
});

/**
 * Pastes the ```ts blocks of `doc` (relative to the repository) in order
 * into one module and compiles it as a user's project that has wshub (and
 * the centrifuge SDK) installed.
 */
function checkBlocks(doc: string, minBlocks: number): void {
  const blocks = tsBlocks(readFileSync(join(repo, doc), 'utf8'));
  assert.ok(
    blocks.length >= minBlocks,
    `expected at least ${minBlocks} blocks in ${doc}, found ${blocks.length}`,
  );
  for (const block of blocks) {
    assert.doesNotMatch(
      block.code,
      /from '\.{1,2}\//,
      `${doc}:${block.line}: import from 'wshub', not a path`,
    );
  }

  const project = mkdtempSync(join(tmpdir(), 'wshub-snippets-'));
  try {
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(repo, join(project, 'node_modules/wshub'), 'dir');
    // npm installs wshub's dependencies beside it, so the README may import them (the centrifuge SDK).
    for (const name of Object.keys(packageJson().dependencies ?? {}))
      symlinkSync(join(repo, 'node_modules', name), join(project, 'node_modules', name), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: compilerOptions(), files: ['snippets.ts'] }),
    );
    // A marker before each block turns a compiler line number back into the document's.
    const source = blocks.map((block) => `// ${doc}:${block.line}\n${block.code}`).join('\n\n');
    writeFileSync(join(project, 'snippets.ts'), `${source}\n`);

    const result = tsc(join(project, 'tsconfig.json'));
    assert.equal(
      result.status,
      0,
      `${doc} snippets do not compile:\n${result.output}\n--- snippets.ts ---\n${numbered(source)}`,
    );
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

test("README's TypeScript blocks compile together, importing from 'wshub'", () => {
  checkBlocks('README.md', 6);
});

test("docs/CHANNELS.md's TypeScript blocks compile together", () => {
  checkBlocks('docs/CHANNELS.md', 2);
});

test("examples compile, importing from 'wshub'", () => {
  const examples = readdirSync(join(repo, 'examples'))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(repo, 'examples', name));
  assert.ok(examples.length > 0, 'no examples found');
  for (const file of examples) {
    const source = readFileSync(file, 'utf8');
    assert.match(source, /from 'wshub'/, `${file} does not import from 'wshub'`);
    assert.doesNotMatch(source, /from '\.\.\//, `${file} imports from outside examples/`);
  }

  const project = mkdtempSync(join(tmpdir(), 'wshub-examples-'));
  try {
    // The examples import each other with `.ts` extensions, as run with tsx.
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: compilerOptions({ allowImportingTsExtensions: true }),
        files: examples,
      }),
    );
    const result = tsc(join(project, 'tsconfig.json'));
    assert.equal(result.status, 0, `examples do not compile:\n${result.output}`);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});

function packageJson(): { dependencies?: Record<string, string> } {
  return JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
}

function numbered(source: string): string {
  return source
    .split('\n')
    .map((line, i) => `${String(i + 1).padStart(4)}  ${line}`)
    .join('\n');
}
