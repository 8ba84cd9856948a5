#!/usr/bin/env bash
# Remakes the project's own test speech (tests/data/speech/*.wav) from the texts in
# tests/data/speech/texts.tsv: espeak-ng (voice en, 150 words a minute) speaks each sentence, and
# sox joins the sentences with 0.6 s of silence and writes 16 kHz mono 16-bit WAV.
# Not run by the build: the clips are committed, and this records exactly how they were made.
# Needs: apt-get install -y espeak-ng sox   (versions used: tests/data/speech/README.md)
set -euo pipefail
cd "$(dirname "$0")/../tests/data/speech"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
while IFS=$'\t' read -r name text; do
    [[ "$name" == "name" || -z "$name" ]] && continue
    parts=()
    index=0
    # One sentence per line: split after ". " so that each sentence is synthesised on its own.
    while IFS= read -r sentence; do
        [[ -z "$sentence" ]] && continue
        index=$((index + 1))
        espeak-ng -v en -s 150 -w "$tmp/$name-$index.wav" "$sentence"
        sox "$tmp/$name-$index.wav" -r 16000 -c 1 -b 16 "$tmp/$name-$index-16k.wav" pad 0 0.6
        parts+=("$tmp/$name-$index-16k.wav")
    done < <(sed 's/\. /.\n/g' <<<"$text")
    sox "${parts[@]}" "$name.wav"
done < texts.tsv
