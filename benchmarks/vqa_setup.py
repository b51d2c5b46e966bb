"""What the VQA benchmarks share: the quickstart's VQA training data and its clean test cell.

Imported by the scripts next to it (``python benchmarks/<script>.py`` puts this folder on
``sys.path``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mafs_bench.models.encoder import DualEncoder
from mafs_bench.models.fusion import AnswerSpace
from mafs_bench.models.vqa_training import VQATrainData, build_answer_space, build_vqa_data, pool_questions
from mafs_bench.tasks import EncodedCell, QuestionSet


def vqa_data_and_cell(encoder: DualEncoder, dataset: Any, backend: Any,
                      domain: str | None = None) -> tuple[AnswerSpace, VQATrainData, EncodedCell]:
    """The answer space and VQA training data of ``backend``'s fusion pool (as the embedded
    backend builds them) and the clean test questions of ``domain`` (default: the dataset's
    first) encoded as one cell."""
    train = dataset.train_split()
    pool, ref = backend.split_pool(len(train.images))
    rows = pool_questions(train, pool)
    space = build_answer_space([train.answers[i] for i in rows], [train.question_types[i] for i in rows],
                               backend.max_answers)
    data = build_vqa_data(encoder, train, pool, ref, space)
    test = dataset.load(domain or dataset.domains[0])
    questions = QuestionSet(encoder.encode_texts(test.questions), test.question_image, test.answers, test.question_types)
    cell = EncodedCell(encoder.encode_images(test.images), encoder.encode_texts([]), np.zeros(0, np.int64),
                       float(encoder.logit_scale.detach()), questions=questions)
    return space, data, cell
