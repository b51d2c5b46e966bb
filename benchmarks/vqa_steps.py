"""VQA heads: clean accuracy against training steps, on the quickstart's encoder and pool.

Trains the VQA heads of the named methods (training seed 0, the suite's recipe with the given
steps) on the embedded world's fusion pool and prints the clean test accuracy, per question type
too, and the CPU seconds each training took (one thread unless ``--threads``):

    python benchmarks/vqa_steps.py --steps 300,600 --methods prior,clip,fixed_sum,mafs,albef,concat_mlp

The encoder comes from the weights cache (trained first if missing: minutes).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from mafs_bench.data import create_dataset
from mafs_bench.models.backends import create_backend
from mafs_bench.models.fusion import create_fusion
from mafs_bench.models.vqa_training import train_vqa
from mafs_bench.runner import load_suite
from mafs_bench.tasks import create_task
from vqa_setup import vqa_data_and_cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="suites/quickstart.yaml")
    parser.add_argument("--steps", default="300")
    parser.add_argument("--methods", default="prior,clip,fixed_sum,mafs,albef,concat_mlp,gmu,qmf,pdf")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    dataset = create_dataset(suite.dataset.name, **suite.dataset.options)
    backend = create_backend(suite.backend.name, **{"seed": suite.seed, **suite.backend.options})
    encoder = backend.build(dataset, [], torch.device("cpu"), lambda d, t: (lambda *a: None), [0], {"retrieval": []}).encoder
    space, data, cell = vqa_data_and_cell(encoder, dataset, backend, suite.dataset.domain)
    task = create_task("vqa")
    embed_dim = int(backend.encoder_config["embed_dim"])
    for steps in (int(x) for x in args.steps.split(",")):
        cfg = replace(backend.vqa_train, seed=0, steps=steps)
        for name in args.methods.split(","):
            torch.manual_seed(0)
            method = create_fusion(name, int(backend.encoder_config["vision_cfg"]["width"]),
                                   int(backend.encoder_config["text_cfg"]["width"]), **backend.method_options.get(name, {}))
            method.setup_answers(space, embed_dim)
            start = time.process_time()
            train_vqa(method, data, cfg)
            seconds = time.process_time() - start
            metrics = task.evaluate(cell, method.eval()).metrics
            per_type = " ".join(f"{k[len('accuracy_'):]}={v:.2f}" for k, v in metrics.items() if k.startswith("accuracy_"))
            print(f"steps {steps:5d} {name:10s} cpu {seconds:6.1f} s  accuracy {metrics['accuracy']:.3f} | {per_type}",
                  flush=True)


if __name__ == "__main__":
    main()
