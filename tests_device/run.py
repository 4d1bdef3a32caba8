"""Runs tests_device/test_*.py on MicroPython (the unix port in CI, a board via mpremote).

Each test module defines functions named ``test_*``; an ``async def`` test is
run with ``asyncio.run``.  A test that raises ``SkipTest`` (or prints SKIP and
raises SystemExit at import, the core convention) is counted as skipped.
Prints one line per test and ends with ``N passed, N failed`` (plus skipped).

    micropython tests_device/run.py [name-substring ...]
"""

import gc
import os
import sys

try:
    import asyncio
except ImportError:  # a board without asyncio cannot run the async tests
    asyncio = None


class SkipTest(Exception):
    pass


def _here():
    f = __file__
    i = f.rfind("/")
    return f[:i] if i >= 0 else "."


def _modules(filters):
    names = sorted(
        n[:-3] for n in os.listdir(_here()) if n.startswith("test_") and n.endswith(".py")
    )
    if filters:
        names = [n for n in names if any(f in n for f in filters)]
    return names


def _run_one(fn):
    r = fn()
    if r is not None and asyncio is not None and hasattr(r, "send"):
        asyncio.run(r)


def main(argv):
    here = _here()
    if here not in sys.path:
        sys.path.append(here)
    passed = failed = skipped = 0
    for name in _modules(argv):
        try:
            mod = __import__(name)
        except SystemExit:
            print("SKIP", name)
            skipped += 1
            continue
        except Exception as e:  # an import error fails every test of the module
            print("FAIL", name, "(import)", repr(e))
            sys.print_exception(e)  # type: ignore
            failed += 1
            continue
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            gc.collect()
            try:
                _run_one(fn)
            except SkipTest as e:
                print("SKIP", name + "." + attr, e)
                skipped += 1
            except Exception as e:
                print("FAIL", name + "." + attr, repr(e))
                sys.print_exception(e)  # type: ignore
                failed += 1
            else:
                print("ok  ", name + "." + attr)
                passed += 1
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
