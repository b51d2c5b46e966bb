"""Write a folder-format (imagefolder) VQA data set: world scenes (seed 11) with re-phrased
questions, JPEG files of mixed sizes, captions on half of the images, a second test domain.

    python benchmarks/folder_vqa_example.py /tmp/shapes2
    # then a suite with dataset {name: folder, domain: plain, shifted_domains: [outline],
    #                            options: {root: /tmp/shapes2}} and task vqa
"""
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from mafs_bench.data.world import WorldConfig, build_split, with_domain, question_type

PHRASE = {"colour": "which colour does the {x} have", "size": "how big is the {x}", "shape_at": "name the shape at the {x}",
          "count": "count the objects", "count_colour": "count the {x} things", "exists": "do you see a {x}"}

def rephrase(q):
    t = question_type(q)
    w = q.split()
    arg = {"colour": w[-1], "size": w[-1], "shape_at": " ".join(w[5:]), "count": "", "count_colour": w[2], "exists": " ".join(w[3:])}[t]
    return PHRASE[t].format(x=arg), t

root = Path(sys.argv[1]); cfg = WorldConfig()
for split, n in (("train", 3000), ("test", 500)):
    world = build_split(cfg, split, "plain", n, seed=11)
    (root / split).mkdir(parents=True, exist_ok=True)
    rows = []
    worlds = [("plain", world)] + ([("outline", with_domain(world, "outline", cfg))] if split == "test" else [])
    for dom, w in worlds:
        for i in range(n):
            img = Image.fromarray(w.images[i])
            if i % 3 == 0:
                img = img.resize((96, 96))
            name = f"{dom}_{i}.jpg"; img.save(root / split / name, quality=90)
            row = {"file_name": name, "domain": dom,
                   "qa": [{"question": rephrase(q)[0], "answers": [a]} for q, a in w.qa[i]]}
            if i % 2 == 0:
                row["captions"] = w.captions[i][:2]
            rows.append(row)
    (root / split / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
print("ok", root)
