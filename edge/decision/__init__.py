"""The disposition: product families (`families`), the explainable rules (`rules`) and the
limits a decision was held against, as records carry them (`limits`).

All rules are evaluated, the worst outcome wins, every decision lists its reasons and records the
rules' version hash. May import: `edge.contract`, `edge.errors`, `vision.severity`.
"""
