"""Training and export of segmentation models (needs the optional `train` extra: torch, onnx).

Small modules, so `reman train` can reuse them:

    data.py      synthetic cores or a `reman synth` folder as arrays at the model's input size
    net.py       the reference network (a small U-Net)
    loop.py      the training loop
    export.py    ONNX export with the sigmoid in the graph and the model card embedded
    evaluate.py  IoU and grade agreement of an ONNX model (onnxruntime and numpy only)
    segment.py   train_reference(): data, network, loop, export and metrics in one call
    reference.py the command that reproduces the shipped model
    input_summary.py  the command that adds the out-of-distribution summary to a model's
                 card in place (vision.ood; onnx only, no torch)
    anomaly.py   PatchCore-style anomaly model from good images only (memory bank, coreset)
    fit_anomaly.py  `reman train --task anomaly`: split, bank, threshold, checked ONNX export
    anomaly_eval.py image and pixel AUROC of an anomaly model (onnxruntime and numpy only)
    backbone.py  the pretrained EfficientNet-Lite0 encoder (ImageNet weights from the extra)
    classify_backbone.py  `reman train --task classify --backbone`: a linear head on its
                 frozen, pooled features, exported with the encoder in one graph
    segment_native.py  `reman train --task segment --steps N`: pretrained encoder, light
                 decoder, crops at native resolution, tiled inference (vision.tiling)
    progress.py  what a run shows and leaves: the progress bar on stderr (steps, loss, ETA)
                 and the per-step curves, MODEL.curves.csv and .png (plots.py draws them);
                 every trainer hooks in with Progress(total, curves=...).step(loss=..., lr=...)

Nothing outside this package imports torch; the node runs without it.
"""
