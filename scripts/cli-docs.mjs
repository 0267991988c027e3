// Writes docs/generated/cli.md, the API site's "CLI" page, from each command's own --help (run
// after `npm run build`): the page cannot drift from what the commands print.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const help = (...args) => {
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`advbn ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  return run.stdout.trimEnd();
};

const overview = help('--help');
const commands = [...overview.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]).filter((c) => !c.startsWith('-'));
const sections = commands.map((c) => `## \`advbn ${c}\`\n\n\`\`\`text\n${help(c, '--help')}\n\`\`\``);
const page = [
  '---',
  'title: CLI',
  '---',
  '',
  '# Command line',
  '',
  'Every command of `npx advbn`, as its `--help` prints it (this page is generated from them). User errors are one line on stderr with exit status 2.',
  '',
  '```text',
  overview,
  '```',
  '',
  ...sections.flatMap((s) => [s, '']),
].join('\n');
const out = join(root, 'docs', 'generated', 'cli.md');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, page);
console.log(`wrote ${out} (${commands.length} commands)`);
