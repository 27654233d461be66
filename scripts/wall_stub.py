"""A stub app that shows the wall for a view model dumped to JSON (for screenshots).

    .venv/bin/python scripts/wall_stub.py /tmp/vms/city.json 8060 [zh|en]

No Redis, no live push: the page is `wall_screen(vm, lang)` with the repo's assets
(`?lang=en` in the URL overrides the language given on the command line).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dash import Dash, dcc, html  # noqa: E402
from dash.dependencies import Input, Output  # noqa: E402

from layouts.wall import wall_screen  # noqa: E402


def make_app(vm: dict, lang: str) -> Dash:
    app = Dash(__name__, assets_folder=str(REPO / "assets"), title="Pingan wall (stub)")
    app.layout = html.Div([dcc.Location(id="stub-url"), html.Div(wall_screen(vm, lang), id="stub-body")])

    @app.callback(Output("stub-body", "children"), Input("stub-url", "search"),
                  prevent_initial_call=True)
    def _lang(search: str | None):
        want = "en" if search and "lang=en" in search else lang
        return wall_screen(vm, want)

    return app


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    vm = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    lang = argv[3] if len(argv) > 3 else "zh"
    make_app(vm, lang).run(host="127.0.0.1", port=int(argv[2]), debug=False)


if __name__ == "__main__":
    main(sys.argv)
