"""Markdown tables for the compression benchmark's results."""

from __future__ import annotations

from typing import Any


def _kib(n: float | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f}"


def codec_markdown(r: dict[str, Any]) -> str:
    lines = [f"# Compression: the codec (zlib {r['zlib']})", "",
             "Corpora: " + ", ".join(
                 f"{name} ({c['messages']} messages, {c['bytes']:,} B, median {c['median']} B)"
                 for name, c in r["corpora"].items()), "",
             "## Chat JSON, level 6, context takeover: window bits x memory level", "",
             "| wbits | memLevel | ratio | deflate ms/MB | inflate ms/MB"
             " | zlib alloc deflate+inflate KiB | RSS/pair first msg KiB"
             " | RSS/pair after 60 msgs KiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines.extend(
        f"| {row['wbits']} | {row['mem_level']} | {row['ratio']:.3f} | "
        f"{row['deflate_ms_per_mb']:.1f} | {row['inflate_ms_per_mb']:.1f} | "
        f"{_kib(row['deflate_alloc'])}+{_kib(row['inflate_alloc'])} | "
        f"{_kib(row['rss_first'])} | {_kib(row['rss_loaded'])} |" for row in r["chat_matrix"])
    lines += ["", "## Every corpus, a few settings", "",
              "| corpus | wbits | memLevel | context takeover | ratio | deflate ms/MB"
              " | inflate ms/MB |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for row in r["corpus_rows"]:
        lines.append(f"| {row['corpus']} | {row['wbits']} | {row['mem_level']} | "
                     f"{'yes' if row['takeover'] else 'no'} | {row['ratio']:.3f} | "
                     f"{row['deflate_ms_per_mb']:.1f} | {row['inflate_ms_per_mb']:.1f} |")
    lines += ["", "## Memory level and speed (13-bit window, level 6)", "",
              "| corpus | memLevel | ratio | deflate ms/MB | inflate ms/MB |",
              "|---|---:|---:|---:|---:|"]
    lines.extend(f"| {row['corpus']} | {row['mem_level']} | {row['ratio']:.3f} | "
                 f"{row['deflate_ms_per_mb']:.1f} | {row['inflate_ms_per_mb']:.1f} |"
                 for row in r.get("mem_rows", []))
    lines += ["", "## Compression level (12-bit window, memLevel 5)", "",
              "| corpus | level | ratio | deflate ms/MB | inflate ms/MB |",
              "|---|---:|---:|---:|---:|"]
    for row in r["level_rows"]:
        lines.append(f"| {row['corpus']} | {row['level']} | {row['ratio']:.3f} | "
                     f"{row['deflate_ms_per_mb']:.1f} | {row['inflate_ms_per_mb']:.1f} |")
    lines += ["", "## Threshold: messages below it sent uncompressed (12 bits, memLevel 5)", "",
              "| corpus | threshold B | ratio | messages compressed |", "|---|---:|---:|---:|"]
    for row in r["threshold_rows"]:
        lines.append(f"| {row['corpus']} | {row['threshold']} | {row['ratio']:.3f} | "
                     f"{row['compressed_messages']} |")
    return "\n".join(lines) + "\n"


def servers_markdown(r: dict[str, Any]) -> str:
    lines = ["# Compression: servers with permessage-deflate negotiated", "",
             f"{r['clients']} clients (websockets {r['websockets']} asyncio client, deflate "
             f"offered), {r['messages']} messages each of 1 B - 64 KiB (text and binary), "
             f"{r['abort']:.0%} of clients abort TCP mid-run; {r['rounds']} round(s). "
             "Memory is RSS growth of the server over its start, per connection.", "",
             "| peer | round | negotiated | idle KiB | after one 60 B JSON KiB"
             " | peak under soak KiB | after all left MiB | soak s | echoes ok"
             " | lost/corrupt | server CPU s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        if "error" in row:
            lines.append(f"| {row['peer']} | {row['round']} | error: {row['error']} |"
                         + " |" * 8)
            continue
        lines.append(
            f"| {row['peer']} | {row['round']} | {row['negotiated']} | "
            f"{_kib(row['idle_per_conn'])} | {_kib(row['one_msg_per_conn'])} | "
            f"{_kib(row['peak_per_conn'])} | {row['rss_after'] / 2**20:.1f} | "
            f"{row['soak_s']:.1f} | {row['ok']:,} | {row['lost']}/{row['corrupted']} | "
            f"{row['server_cpu_s']:.1f} |")
    if r.get("ratios"):
        lines += ["", "Ratios to websockets (medians over rounds; lower is better except "
                  "throughput):", "", "| peer | idle | one message | peak | throughput |",
                  "|---|---:|---:|---:|---:|"]
        for peer, q in r["ratios"].items():
            lines.append(f"| {peer} | {q['idle']:.2f}x | {q['one']:.2f}x | {q['peak']:.2f}x | "
                         f"{q['throughput']:.2f}x |")
    return "\n".join(lines) + "\n"
