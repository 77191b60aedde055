"""``sarzoo recipes``: the recipes that ship with sarzoo, by the names other commands accept."""
from __future__ import annotations

import argparse
import json

NAME = "recipes"
HELP = "list the built-in recipes: name, description, file"
DESCRIPTION = (HELP + ". Wherever a recipe is expected (sarzoo build, sarzoo train, extends: in a "
               "recipe of your own) a built-in one can be named without a path, e.g. 'sarzoo train "
               "tiny'; copy its file to start a recipe of your own.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per recipe")


def run(args) -> int:
    from sarzoo.catalog import builtin_dir, builtin_recipes

    recipes = builtin_recipes()
    if args.json:
        print(json.dumps([{"name": r.name, "description": r.description, "path": str(r.path)}
                          for r in recipes], indent=2))
        return 0
    if not recipes:
        print(f"no built-in recipes found (looked in {builtin_dir()})")
        return 0
    rows = [(r.name, r.description, str(r.path)) for r in recipes]
    head = ("name", "description", "path")
    w = [max(len(row[i]) for row in rows + [head]) for i in range(2)]
    for row in [head] + rows:
        print(f"{row[0].ljust(w[0])}  {row[1].ljust(w[1])}  {row[2]}")
    return 0
