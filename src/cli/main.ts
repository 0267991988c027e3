#!/usr/bin/env node
// Entry point of the `advbn` command.
import { packageInfo } from '../package-root.js';
import { runCorrupt } from './corrupt.js';
import { runDigits } from './digits.js';
import { runDoctor } from './doctor.js';
import { runEvaluate } from './evaluate.js';
import { runFineTune } from './fine-tune.js';
import { runPredict } from './predict.js';
import { runReproduce } from './reproduce.js';
import { runVisualize } from './visualize.js';

type Command = (args: readonly string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  doctor: { run: runDoctor, summary: 'check the native addon, list devices, run a tiny AdvBN step on each [--json]' },
  corrupt: { run: runCorrupt, summary: 'write ImageNet-C style corrupted copies of images (--list: the 19 names)' },
  'fine-tune': { run: runFineTune, summary: 'fine-tune a ResNet on an image folder (checkpoints, --resume, summary)' },
  evaluate: { run: runEvaluate, summary: 'top-1/top-5, per-class accuracy, confusion matrix, corruptions (mCE) and domains per BN branch; writes evaluation.json/.md' },
  predict: { run: runPredict, summary: 'top-k classes with probabilities of image files or folders, as JSON lines' },
  visualize: { run: runVisualize, summary: "decode AdvBN-perturbed features into a picture (the paper's figure)" },
  reproduce: {
    run: runReproduce,
    summary:
      "leave-one-domain-out comparison of AdvBN, ERM, MixStyle, DSU and combinations on embedded digits (or PACS); --preset imagenet: the paper's ImageNet recipe; writes a report",
  },
  digits: { run: runDigits, summary: 'export the digits benchmark as image folders for any framework (digits export --out DIR)' },
};

function usage(): string {
  const lines = ['usage: advbn <command> [options]', '', 'commands:'];
  for (const [name, { summary }] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${summary}`);
  lines.push('', 'options:', '  --help     show this help', '  --version  print the package version');
  return lines.join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    console.log(packageInfo().version);
    return 0;
  }
  const known = COMMANDS[command];
  if (known) return known.run(rest);
  console.error(`advbn: unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')}; advbn --help describes them)`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  },
);
