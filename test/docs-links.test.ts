// Committed documents link only committed files: every relative link and image of every tracked
// markdown file (README, docs/, bench/, the committed reports) names a file git tracks.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' });

/** The relative link targets of a markdown text: [..](target), ![..](target), src="target", href="target"; code is skipped. */
function relativeLinks(markdown: string): string[] {
  const text = markdown.replace(/^(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`+[^`\n]*`+/g, '');
  const targets = [
    ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+["'(][^)]*)?\)/g)].map((m) => m[1]!),
    ...[...text.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]!),
    ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1]!),
  ];
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#') && !t.startsWith('/'));
}

/** The links of `doc` (a repository path) whose target is neither a tracked file nor a folder holding one. */
function brokenLinks(doc: string, markdown: string, tracked: ReadonlySet<string>): string[] {
  const broken: string[] = [];
  for (const link of relativeLinks(markdown)) {
    const path = posix.normalize(posix.join(posix.dirname(doc), decodeURIComponent(link.replace(/[#?].*$/, '')))).replace(/\/$/, '');
    if (path === '.' || path === '') continue;
    if (!tracked.has(path) && ![...tracked].some((f) => f.startsWith(`${path}/`))) broken.push(`${doc}: ${link}`);
  }
  return broken;
}

describe('documentation links', () => {
  it('finds links, images and references, not code or URLs', () => {
    const md = [
      'See [the report](docs/results/digits/report.md#verdict) and ![chart](domains.svg "Accuracy").',
      '<img src="docs/advbn-features.png" width="300"> [site](https://example.com) [top](#install)',
      '`[not](a-link.md)`',
      '```md',
      '![in code](nope.png)',
      '```',
      '[ref]: ../bench/RESULTS.md',
    ].join('\n');
    expect(relativeLinks(md)).toEqual(['docs/results/digits/report.md#verdict', 'domains.svg', 'docs/advbn-features.png', '../bench/RESULTS.md']);
  });

  it('a link to a file git does not track is reported', () => {
    const tracked = new Set(['docs/results/digits/report.md', 'docs/results/digits/domains.png', 'README.md']);
    const report = '![Accuracy](domains.svg) ([PNG](domains.png)) [readme](../../../README.md) [folder](../digits/)';
    expect(brokenLinks('docs/results/digits/report.md', report, tracked)).toEqual(['docs/results/digits/report.md: domains.svg']);
  });

  it('every relative link of a tracked markdown file points at a tracked file', () => {
    const tracked = new Set(git('ls-files', '-z').split('\0').filter(Boolean));
    const docs = [...tracked].filter((f) => f.endsWith('.md') && !f.startsWith('node_modules/'));
    expect(docs).toEqual(expect.arrayContaining(['README.md', 'docs/results/digits/report.md']));
    // The working tree's text: a link just added to an uncommitted file fails here before it is committed.
    expect(docs.flatMap((doc) => brokenLinks(doc, readFileSync(join(root, doc), 'utf8'), tracked))).toEqual([]);
  });
});
