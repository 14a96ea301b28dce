"""Fail when the notebooks and the library are out of sync or the notebooks are not clean.

Runs `nbdev_export` and `nbdev_clean` and compares every notebook and module before and after:
anything they change was not committed in its exported / cleaned form.
"""
import hashlib, os, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
bin_ = Path(sys.executable).parent

def snapshot():
    files = sorted((root / "nbs").glob("*.ipynb")) + sorted((root / "music_vae_nb").rglob("*.py"))
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in files}

env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}   # nbdev_export does nothing under IN_TEST
before = snapshot()
for cmd in ("nbdev_export", "nbdev_clean"):
    subprocess.run([str(bin_ / cmd)], cwd=root, env=env, check=True)
after = snapshot()
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
if changed:
    print("check_sync: nbdev_export / nbdev_clean changed these files (commit them):", *changed, sep="\n  ")
    sys.exit(1)
print(f"check_sync: {len(after)} notebooks and modules in sync and clean")
