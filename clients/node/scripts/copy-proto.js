// Copies the contract into the package (proto/), so that the packed tarball carries it: run by
// `npm ci`/`npm install` in this folder and by `npm pack` (the `prepare` script). In an
// installed tarball there is nothing to copy from, and the copy it carries is used as it is.

import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const RELATIVE = 'transcribe/v1/transcribe.proto';
const source = fileURLToPath(new URL(`../../../proto/${RELATIVE}`, import.meta.url));
const target = fileURLToPath(new URL(`../proto/${RELATIVE}`, import.meta.url));

if (existsSync(source)) {
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(source, target);
} else if (!existsSync(target)) {
  throw new Error(`no contract to copy: ${source} is missing`);
}
