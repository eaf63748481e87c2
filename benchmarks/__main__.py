"""Run every benchmark: ``python -m benchmarks [--quick] [NAME ...]`` from the project root
(the 30-minute soak, ``benchmarks/soak.py``, runs only on its own).

Each ``bench_*.py`` is a script of its own (run it alone for its options); this runs them one after
the other, so they never compete for the two cores.
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    args = sys.argv[1:]
    quick = [a for a in args if a.startswith("--")]
    names = [a for a in args if not a.startswith("--")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(n in s.stem for n in names)]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        flags = [f for f in quick if f in script.read_text()]  # only the flags the script knows
        failed += subprocess.call([sys.executable, str(script), *flags], cwd=HERE.parent) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
