#!/usr/bin/env bash
# Install the Debian packages the built-in catalog needs (called by `make install`).
# Only what is missing is installed; without root or apt the affected catalog models report UNAVAILABLE
# with the exact install command, and everything else works.
set -u
PACKAGES=(
  stockfish              # chess-stockfish
  apertium               # apertium-en-es / apertium-es-en translation
  apertium-eng-spa
  flite                  # test speech for the ASR metric
  dataset-fashion-mnist  # fashion-cnn / fashion-vae training data
  fonts-dejavu-core      # OCR test images
  wrk                    # make bench load generator
  nghttp2-client         # make bench: h2load drives the gRPC points
  chromium               # browser tests (web console, offline /docs) through pytest-playwright
  ffmpeg                 # /v1/audio/speech in mp3, opus, aac, flac and pcm (wav needs nothing)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: not root or no apt-get; skipping Debian packages: ${missing[*]}" >&2
  echo "      catalog models that need them will be UNAVAILABLE with: apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed" >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || echo "warning: some Debian packages failed to install: ${missing[*]} (affected catalog models will be UNAVAILABLE)" >&2
exit 0
