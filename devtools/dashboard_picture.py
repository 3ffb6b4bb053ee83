"""Draw a CloudWatch dashboard definition as an SVG, for the README.

Each widget is a box at its own grid position (24 columns wide, as CloudWatch lays it
out) with its title and one line per metric or expression it plots. It is a map of what
the dashboard contains, not a screenshot of data.

Regenerate: python -m devtools.dashboard_picture cdk.out/rc-fraud-detection-prod.template.json docs/dashboard.svg
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path

COLUMN = 40  # px per grid column
ROW = 30  # px per grid row
PAD = 8


def dashboard_body(template: dict) -> dict:
    """The dashboard's JSON body; tokens inside it (region, names) become `${...}`."""
    resource = next(r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard")
    body = resource["Properties"]["DashboardBody"]
    if isinstance(body, str):
        return json.loads(body)
    parts = body["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "${" + next(iter(p.values())) + "}" for p in parts))


def _metric_labels(widget: dict) -> list[str]:
    labels = []
    for metric in widget["properties"].get("metrics", []):
        options = metric[-1] if isinstance(metric[-1], dict) else {}
        if "expression" in options:
            labels.append(f"{options.get('label', '')} = {options['expression']}")
        elif options.get("visible") is False:
            continue
        else:
            names = [m for m in metric if isinstance(m, str)]
            label = options.get("label") or (names[1] if len(names) > 1 else "?")
            labels.append(f"{label} ({names[0]} {names[1]})" if len(names) > 1 else label)
    return labels


def render(body: dict, *, title: str) -> str:
    widgets = body["widgets"]
    width = 24 * COLUMN
    height = max(w["y"] + w["height"] for w in widgets) * ROW + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#f4f6f8"/>',
           f'<text x="{PAD}" y="24" font-size="16" font-weight="bold">{escape(title)}</text>']
    for w in widgets:
        x, y = w["x"] * COLUMN + PAD / 2, w["y"] * ROW + 36
        wpx, hpx = w["width"] * COLUMN - PAD, w["height"] * ROW - PAD
        out.append(f'<rect x="{x}" y="{y}" width="{wpx}" height="{hpx}" rx="4" fill="white" stroke="#aab4be"/>')
        out.append(f'<text x="{x + PAD}" y="{y + 20}" font-size="13" font-weight="bold">{escape(w["properties"].get("title", ""))}</text>')
        for i, label in enumerate(_metric_labels(w)[:8]):
            out.append(f'<text x="{x + PAD}" y="{y + 42 + i * 16}" font-size="11" fill="#333">• {escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    template_path, out_path = Path(argv[0]), Path(argv[1])
    template = json.loads(template_path.read_text())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render(dashboard_body(template), title=f"Dashboard of {template_path.name.split('.')[0]}"))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
