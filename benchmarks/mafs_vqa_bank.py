"""MA-AFS on VQA: does its image weight fall as the image degrades? Answer prototypes vs captions as text bank.

Trains MA-AFS's VQA head (training seed 0, the quickstart's encoder, pool and recipe) once with
the specified text bank, the answer prototypes (the answers' text embeddings), and once with the
captions of the held-out bank images (the retrieval bank), then prints, per corruption, the
Spearman correlation between severity (0, 1, 3, 5) and the corrupted modality's weight over the
quickstart's 2000 evaluated questions, and the accuracy per severity:

    python benchmarks/mafs_vqa_bank.py answers,captions
"""
import sys, torch, numpy as np
from dataclasses import replace
from scipy.stats import spearmanr
import corruptions
from mafs_bench.data import create_dataset
from mafs_bench.models.backends import create_backend
from mafs_bench.models.fusion import create_fusion
from mafs_bench.models.vqa_training import build_answer_space, build_vqa_data, pool_questions, train_vqa
from mafs_bench.tasks import EncodedCell, QuestionSet, create_task
torch.set_num_threads(1)
BANKS = sys.argv[1] if len(sys.argv) > 1 else "answers,captions"
ds = create_dataset("embedded_world", size=1000, train_size=20000, seed=0)
be = create_backend("embedded", seed=0)
enc = be.build(ds, [], torch.device("cpu"), lambda d, t: (lambda *a: None), [0], {"retrieval": []}).encoder
train = ds.train_split(); pool, ref = be.split_pool(len(train.images))
rows = pool_questions(train, pool)
space = build_answer_space([train.answers[i] for i in rows], [train.question_types[i] for i in rows], 1000)
data = build_vqa_data(enc, train, pool, ref, space)
ref_caps = [train.captions[int(np.flatnonzero(train.caption_image == i)[0])] for i in range(ref.start, ref.stop)]
test = ds.load("plain"); task = create_task("vqa", max_questions=2000); test = task.select(test)
img0 = enc.encode_images(test.images); q0 = enc.encode_texts(test.questions)
cells = {}
for c in ["gaussian_noise", "motion_blur", "occlusion", "keyboard", "word_delete"]:
    for s in [0, 1, 3, 5]:
        if s == 0: cells[(c, s)] = (img0, q0); continue
        if corruptions.get(c).modality == "image":
            cells[(c, s)] = (enc.encode_images(corruptions.apply_batch(c, test.images, s, seed=0, sample_ids=test.image_ids)), q0)
        else:
            cells[(c, s)] = (img0, enc.encode_texts(corruptions.apply_batch(c, test.questions, s, seed=0, sample_ids=test.question_ids)))
for bank in BANKS.split(","):
    d = data
    if bank == "captions":
        d = replace(data, reference=replace(data.reference, bank_texts=enc.encode_texts(ref_caps).emb))
    torch.manual_seed(0); m = create_fusion("mafs", 128, 128); m.setup_answers(space, 128)
    train_vqa(m, d, replace(be.vqa_train, seed=0)); m.eval()
    out = []
    for c in ["gaussian_noise", "motion_blur", "occlusion", "keyboard", "word_delete"]:
        sev, w, acc = [], [], []
        col = 0 if corruptions.get(c).modality == "image" else 1
        for s in [0, 1, 3, 5]:
            im, q = cells[(c, s)]
            cell = EncodedCell(im, enc.encode_texts([]), np.zeros(0, np.int64), 10.0,
                               questions=QuestionSet(q, test.question_image, test.answers, test.question_types))
            r = task.evaluate(cell, m)
            a = r.weights["alpha_v" if col == 0 else "alpha_t"]; sev += [s] * len(a); w += list(a); acc.append(r.metrics["accuracy"])
        out.append(f"{c} {spearmanr(sev, w).statistic:+.3f} acc {'/'.join(f'{x:.3f}' for x in acc)}")
    print(bank, " | ".join(out), flush=True)
