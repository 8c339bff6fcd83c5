"""The `vadx` command line."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_plugins(args: argparse.Namespace) -> int:
    from vadx import plugins

    found = plugins.list_plugins()
    if args.json:
        print(json.dumps([vars(p) for p in found], indent=2))
        return 0
    if not found:
        print("No vadx plugins installed (entry-point group 'vadx').")
        return 0
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "DETECTORS")]
    for p in found:
        what = f"FAILED: {p.error}" if p.error else (", ".join(p.detectors) or "(none)")
        rows.append((p.name, p.distribution or "-", p.version or "-", what))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vadx import __version__

    parser = argparse.ArgumentParser(prog="vadx", description="Video anomaly detection.")
    parser.add_argument("--version", action="version", version=f"vadx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list plugins and the detectors they provide")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
