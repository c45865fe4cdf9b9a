"""The station at work: from a trigger to a committed decision.

    loop     the station loop: capture, grade, read the bench, decide, journal
    camera   camera sources (folder, file, USB, Pi camera) and image decoding
    coreid   reading the core id from the trigger, a barcode or the bench
    quality  image quality checks before grading (blur, exposure)
    health   the node's health figures (`stats`)
    shadow   a candidate model grading beside the active one, deciding nothing (`shadow`)
    frames   a raw frame and the active model's masks for the label editor (`frame`)
    models   model changes while the node runs (`model/set`) and the registry's state (`models`)

May import: `edge.config`, `edge.contract`, `edge.decision`, `edge.journal`, `edge.errors`,
`edge.events`, `edge.ids`, `vision`.
"""
