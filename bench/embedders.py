"""Dense retrieval quality and speed of the packaged embedders at several chunk sizes.

For each data set (cmrc2018_zh, hotpotqa_en; only ``split == "dev"`` queries), the pool is the
passages that are gold for the sampled queries plus random distractors; each passage becomes
"title\\ntext" (as a user's "<id>.txt" file would), is split with kbchat's splitter, embedded
with ``embed_texts``, and searched by dot product. A chunk hit counts for its passage.
Recall@k is the share of a query's gold passages among the top k chunks (so duplicates from
one passage cost rank, as they do for a user), MRR@10 uses the first gold chunk. The same
metrics deduplicated to passages are stored under "passages".

A cross-lingual check runs on the same pools: 30 Chinese questions written for hotpotqa
passages (English) and 30 English questions written for cmrc2018 passages (Chinese).

Usage::

    .venv/bin/python bench/embedders.py --models use e5 --sizes 250 400 600 --overlaps 0.15

Results are merged into bench/results/embedders.json, keyed by data set, pool (queries,
distractors), model, chunk size and overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kbchat.embed.base import Embedder, embed_texts
from kbchat.ingest.splitter import split_documents
from kbchat.registry import embedders
from kbchat.types import Document

EVAL_DIR = Path(os.environ.get("KBCHAT_EVAL_DIR", "/work/shared/eval/dev"))
RESULTS = Path(__file__).parent / "results" / "embedders.json"
KS = (1, 5, 10)

# Questions written for this benchmark (not taken from the data sets), keyed by passage id.
ZH_QUESTIONS_FOR_HOTPOTQA = {
    "hp-00002": "哪位英国作家写了很多关于啤酒和威士忌的书？",
    "hp-00032": "皮特·桑普拉斯的绰号是什么？",
    "hp-00064": "哪部2011年的纪录片讲述了威林汉姆因纵火谋杀被处决的案件？",
    "hp-00090": "默瑟家族基金会由谁负责运营？",
    "hp-00121": "托马斯·沃尔夫是哪个国家的小说家？",
    "hp-00154": "佐治亚南方大学棒球队的主场球场能容纳多少观众？",
    "hp-00180": "1983年的科幻奇幻电影《魔域王子》由谁执导？",
    "hp-00210": "思维科学研究所是由哪位前宇航员共同创立的？",
    "hp-00245": "哈奇修正案提议废除美国宪法中的哪项条款？",
    "hp-00278": "1981年北爱尔兰监狱里的绝食抗议是怎么开始的？",
    "hp-00302": "哪位美国说唱歌手在2017年的专辑《17》中收录了歌曲《乔斯琳·弗洛雷斯》？",
    "hp-00338": "女演员希瑟·林德的双胞胎姐妹是谁？",
    "hp-00361": "上海迪士尼乐园是哪一天开园的？",
    "hp-00397": "英格兰西北部的M61高速公路经过哪些城镇？",
    "hp-00422": "约翰·埃德蒙兹在巴布森学院担任什么职务？",
    "hp-00452": "乔治·埃格顿是哪位女性主义作家的笔名？",
    "hp-00481": "2007-08赛季俄克拉荷马大学男子篮球队的主教练是谁？",
    "hp-00512": "波坎蒂科山联合教堂是谁在1921年修建的？",
    "hp-00540": "1996年的黑色犯罪惊悚片《穆赫兰瀑布》由谁执导？",
    "hp-00573": "苏格兰裁判鲍勃·瓦伦丁在1982年世界杯上执法了哪些比赛？",
    "hp-00601": "专辑《天使昏迷》是哪两个乐队合作的？",
    "hp-00632": "亚利桑那州的美洲原住民人口在美国各州中排第几？",
    "hp-00659": "谁是第一位正式的一级方程式世界冠军？",
    "hp-00694": "早期的直线加速改装车“布鲁图斯”由谁驾驶？",
    "hp-00724": "苹果公司的麦金塔IIcx电脑是在什么时间段销售的？",
    "hp-00756": "大卫·马梅特哪部关于芝加哥房地产经纪人的剧作获得了普利策奖？",
    "hp-00780": "演员列维·施瑞伯是哪一年出生的？",
    "hp-00809": "日产森特拉轿车是从哪一年开始生产的？",
    "hp-00841": "布加勒斯特洲际酒店有多高，有多少层？",
    "hp-00872": "埃里卡·容最著名的小说是哪一部？",
}
EN_QUESTIONS_FOR_CMRC = {
    "cmrc-dev-DEV_1": "What are the rhythm patterns of Chinese opera percussion notation called?",
    "cmrc-dev-DEV_1039": "Which Chinese mathematician first did research in abstract algebra?",
    "cmrc-dev-DEV_1068": "Which One Piece film came out in 2004 as the fifth movie?",
    "cmrc-dev-DEV_1095": "How many volumes did the first Flora of Inner Mongolia have?",
    "cmrc-dev-DEV_1139": "When was the Italian football club Brescia founded?",
    "cmrc-dev-DEV_1155": "What was the population of Newport, Rhode Island in the 2010 census?",
    "cmrc-dev-DEV_1178": "Which scaleless eel species lives in the waters southwest of Taiwan?",
    "cmrc-dev-DEV_1507": "Which Russian novelist wrote Oblomov?",
    "cmrc-dev-DEV_1561": "What other names does the ring-tailed cardinalfish have?",
    "cmrc-dev-DEV_1590": "Where is the white suckerfish found?",
    "cmrc-dev-DEV_1659": "When was Sejong University in Seoul founded?",
    "cmrc-dev-DEV_171": "When did the Iwate-Miyagi Nairiku earthquake happen?",
    "cmrc-dev-DEV_181": "Who was Empress Zhu, the wife of Sun Xiu of Eastern Wu?",
    "cmrc-dev-DEV_1913": "What did Hitler announce at Heldenplatz in Vienna in 1938?",
    "cmrc-dev-DEV_214": "What does the dinosaur genus name Velafrons mean?",
    "cmrc-dev-DEV_266": "Along which coasts does the topsmelt silverside live?",
    "cmrc-dev-DEV_291": "Which Liao dynasty official was made Prince of Zhao in 1059?",
    "cmrc-dev-DEV_327": "How does a landslide dam lake form?",
    "cmrc-dev-DEV_347": "Which federal department is the United States Secret Service part of?",
    "cmrc-dev-DEV_378": "How long is the Hong Kong Champions and Chater Cup horse race?",
    "cmrc-dev-DEV_401": "Where did Gregory So, Hong Kong's former commerce secretary, study?",
    "cmrc-dev-DEV_419": "Who was Lü Kai of Shu Han during the Three Kingdoms?",
    "cmrc-dev-DEV_438": "Which organisation was created by the 1874 Treaty of Bern?",
    "cmrc-dev-DEV_458": "Who was the Qing dynasty envoy to the United States from 1903 to 1908?",
    "cmrc-dev-DEV_477": "What is Marilyn Manson's song Antichrist Superstar about?",
    "cmrc-dev-DEV_492": "Who is the president of Chu Hai College in Hong Kong?",
    "cmrc-dev-DEV_509": "Which Beijing subway line does Xitucheng station belong to?",
    "cmrc-dev-DEV_537": "What is the currency of the Democratic Republic of the Congo?",
    "cmrc-dev-DEV_553": "What is overfitting in statistics?",
    "cmrc-dev-DEV_582": "Which JR East line serves Sobudaishita Station?",
}


@dataclass
class Pool:
    """Passages to search and the questions asked of them."""

    name: str
    passages: dict[str, str]
    queries: list[tuple[str, frozenset[str]]]
    cross_queries: list[tuple[str, frozenset[str]]]
    distractors: int


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def load_pool(
    name: str, cross: dict[str, str], *, n_queries: int, n_distractors: int, seed: int
) -> Pool:
    """Sample dev queries of one data set and build the passage pool they are asked of."""
    folder = EVAL_DIR / name
    queries = [q for q in _read_jsonl(folder / "queries.jsonl") if q["split"] == "dev"]
    rng = random.Random(seed)
    if len(queries) > n_queries:
        queries = rng.sample(queries, n_queries)
    corpus = {
        str(d["id"]): f"{d['title']}\n{d['text']}" for d in _read_jsonl(folder / "corpus.jsonl")
    }
    chosen = {str(g) for q in queries for g in q["gold_doc_ids"]} | set(cross)  # type: ignore[attr-defined]
    others = sorted(set(corpus) - chosen)
    chosen |= set(rng.sample(others, min(n_distractors, len(others))))
    return Pool(
        name=name,
        passages={pid: corpus[pid] for pid in sorted(chosen)},
        queries=[(str(q["question"]), frozenset(map(str, q["gold_doc_ids"]))) for q in queries],  # type: ignore[call-overload]
        cross_queries=[(question, frozenset([pid])) for pid, question in cross.items()],
        distractors=n_distractors,
    )


class CachedEmbedder:
    """Embeds through ``embed_texts``, caching passages and timing only uncached work."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        embedder.embed_batch(["warm-up"])  # load the model outside the timings
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.count = 0
        self.chars = 0

    def passages(self, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            started = time.perf_counter()
            vectors = embed_texts(self.embedder, missing, batch_size=32)
            self.seconds += time.perf_counter() - started
            self.count += len(missing)
            self.chars += sum(map(len, missing))
            self.cache.update(zip(missing, vectors, strict=True))
        return np.vstack([self.cache[t] for t in texts])

    def queries(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.embedder, texts, batch_size=32, is_query=True)


def score(
    query_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    owners: list[str],
    golds: list[frozenset[str]],
) -> dict[str, dict[str, float]]:
    """Recall@1/5/10 and MRR@10 over ranked chunks and over passages ranked by best chunk."""
    scores = query_vectors @ chunk_vectors.T
    depth = min(200, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    sums = {"chunks": dict.fromkeys(["mrr@10", *[f"recall@{k}" for k in KS]], 0.0)}
    sums["passages"] = dict(sums["chunks"])
    for row, gold in enumerate(golds):
        ranked = [owners[i] for i in top[row][np.argsort(-scores[row, top[row]])]]
        for level, hits in (("chunks", ranked), ("passages", list(dict.fromkeys(ranked)))):
            for k in KS:
                sums[level][f"recall@{k}"] += len(gold & set(hits[:k])) / len(gold)
            first = next((rank for rank, pid in enumerate(hits[:10], 1) if pid in gold), None)
            sums[level]["mrr@10"] += 1.0 / first if first else 0.0
    return {
        level: {m: round(v / len(golds), 4) for m, v in values.items()}
        for level, values in sums.items()
    }


def run_config(
    pool: Pool, model: CachedEmbedder, model_name: str, size: int, overlap: int
) -> dict[str, object]:
    """Split, embed and search one pool with one model and one chunk size."""
    documents = [Document(text=text, source=pid) for pid, text in pool.passages.items()]
    chunks = split_documents(documents, chunk_size=size, chunk_overlap=overlap)
    seconds_before, count_before, chars_before = model.seconds, model.count, model.chars
    chunk_vectors = model.passages([c.text for c in chunks])
    embedded = model.count - count_before
    seconds = model.seconds - seconds_before
    owners = [c.source for c in chunks]
    result: dict[str, object] = {
        "dataset": pool.name,
        "distractors": pool.distractors,
        "model": model_name,
        "embedder": model.embedder.name,
        "chunk_size": size,
        "chunk_overlap": overlap,
        "queries": len(pool.queries),
        "passages": len(pool.passages),
        "chunks": len(chunks),
        "mean_chunk_chars": round(float(np.mean([len(c.text) for c in chunks])), 1),
        "embedded_chunks": embedded,
        "embed_seconds": round(seconds, 2),
        "chunks_per_second": round(embedded / seconds, 2) if seconds else None,
        "chars_per_second": round((model.chars - chars_before) / seconds) if seconds else None,
    }
    questions = [q for q, _ in pool.queries]
    result["metrics"] = score(
        model.queries(questions), chunk_vectors, owners, [g for _, g in pool.queries]
    )
    cross = [q for q, _ in pool.cross_queries]
    result["cross_lingual"] = score(
        model.queries(cross), chunk_vectors, owners, [g for _, g in pool.cross_queries]
    )
    return result


def _merge(runs: list[dict[str, object]], settings: dict[str, object], out: Path) -> None:
    def key(run: dict[str, object]) -> tuple[object, ...]:
        pool = (run["queries"], run.get("distractors", 300))
        return run["dataset"], *pool, run["model"], run["chunk_size"], run["chunk_overlap"]

    old = json.loads(out.read_text()) if out.exists() else {"runs": []}
    merged = {key(run): run for run in old["runs"]}
    merged.update({key(run): run for run in runs})
    out.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(merged.values(), key=lambda r: tuple(map(str, key(r))))
    out.write_text(
        json.dumps({"settings": settings, "runs": ordered}, ensure_ascii=False, indent=1) + "\n"
    )


def print_table(path: Path) -> None:
    """Print the stored runs as a markdown table (chunk-level metrics)."""
    runs = json.loads(path.read_text())["runs"]
    print(
        "| set | pool q/d | model | size/overlap | chunks | R@1 | R@5 | R@10 | MRR@10 "
        "| x-ling R@1 | x-ling R@10 | x-ling MRR | chunks/s |"
    )
    print("|" + "---|" * 13)
    for run in runs:
        m, x = run["metrics"]["chunks"], run["cross_lingual"]["chunks"]
        print(
            f"| {run['dataset']} | {run['queries']}/{run.get('distractors', 300)} "
            f"| {run['model']} | {run['chunk_size']}/{run['chunk_overlap']} | {run['chunks']} "
            f"| {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} "
            f"| {m['mrr@10']:.3f} | {x['recall@1']:.3f} | {x['recall@10']:.3f} "
            f"| {x['mrr@10']:.3f} | {run['chunks_per_second']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["use", "e5"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[250, 400, 600])
    parser.add_argument(
        "--overlaps",
        nargs="+",
        type=float,
        default=[0.15],
        help="overlap as a fraction of chunk size",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--distractors", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print stored results and exit")
    args = parser.parse_args()
    if args.table:
        print_table(args.out)
        return
    pools = [
        load_pool(
            "cmrc2018_zh",
            EN_QUESTIONS_FOR_CMRC,
            n_queries=args.queries,
            n_distractors=args.distractors,
            seed=args.seed,
        ),
        load_pool(
            "hotpotqa_en",
            ZH_QUESTIONS_FOR_HOTPOTQA,
            n_queries=args.queries,
            n_distractors=args.distractors,
            seed=args.seed,
        ),
    ]
    runs = []
    for model_name in args.models:
        for pool in pools:
            model = CachedEmbedder(embedders.create(model_name, threads=args.threads))
            for size in args.sizes:
                for ratio in args.overlaps:
                    overlap = int(round(size * ratio / 10) * 10)
                    run = run_config(pool, model, model_name, size, overlap)
                    runs.append(run)
                    print(
                        json.dumps(
                            {k: v for k, v in run.items() if k != "passages"}, ensure_ascii=False
                        ),
                        flush=True,
                    )
    _merge(
        runs,
        {
            "queries_per_set": args.queries,
            "distractors": args.distractors,
            "seed": args.seed,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "split": "dev",
            "cross_lingual_questions": 30,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
