"""The disposition: product families (`families`) and the explainable rules (`rules`).

All rules are evaluated, the worst outcome wins, every decision lists its reasons and records the
rules' version hash. May import: `edge.contract`, `edge.errors`, `vision.severity`.
"""
