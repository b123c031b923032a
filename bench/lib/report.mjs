// Summaries of the raw runs: per variant the median and min–max of each metric, the ratios
// acvpn / openconnect for variants in the same transport mode, and a plain-text table.

const BYTES_PER_GB = 1e9;
const BYTES_PER_MIB = 1024 * 1024;

/** The per-run values the report summarises, each computed from one successful run. */
const METRICS = [
  { key: 'upMbps', label: 'up Mbit/s', better: 'higher', value: (run) => run.upload.bitsPerSecond / 1e6 },
  { key: 'downMbps', label: 'down Mbit/s', better: 'higher', value: (run) => run.download.bitsPerSecond / 1e6 },
  {
    key: 'cpuSecondsPerGB',
    label: 'CPU s/GB',
    better: 'lower',
    value: (run) => (run.cpuSeconds.upload + run.cpuSeconds.download) / ((run.upload.bytes + run.download.bytes) / BYTES_PER_GB),
  },
  {
    key: 'uploadCpuSecondsPerGB',
    label: 'CPU s/GB up',
    better: 'lower',
    value: (run) => run.cpuSeconds.upload / (run.upload.bytes / BYTES_PER_GB),
  },
  {
    key: 'downloadCpuSecondsPerGB',
    label: 'CPU s/GB down',
    better: 'lower',
    value: (run) => run.cpuSeconds.download / (run.download.bytes / BYTES_PER_GB),
  },
  { key: 'peakRssMiB', label: 'peak RSS MiB', better: 'lower', value: (run) => run.peakRssBytes / BYTES_PER_MIB },
  // From the client's start to the first ping through the tunnel, polled every 100 ms.
  { key: 'connectSeconds', label: 'connect s', better: 'lower', value: (run) => run.connectSeconds },
];

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function describeValues(values) {
  if (values.length === 0) return null;
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Returns one summary per variant, in the order given, from the runs that moved data. */
export function summarise(variants, runs) {
  return variants.map((variant) => {
    const own = runs.filter((run) => run.variant === variant.name);
    const ok = own.filter((run) => run.ok);
    const metrics = {};
    for (const metric of METRICS) metrics[metric.key] = describeValues(ok.map(metric.value));
    return {
      variant: variant.name,
      client: variant.client,
      transport: variant.transport,
      peer: variant.peer,
      runs: own.length,
      okRuns: ok.length,
      dtlsSeenRuns: ok.filter((run) => run.dtlsSeen).length,
      mtu: [...new Set(ok.map((run) => run.mtu))],
      metrics,
    };
  });
}

/**
 * Returns, for each acvpn variant whose openconnect peer also ran, the ratio of their medians
 * per metric (acvpn / openconnect). Above 1 is better for acvpn on throughput, below 1 is better
 * on CPU and memory.
 */
export function compare(summaries) {
  const comparisons = [];
  for (const summary of summaries) {
    if (summary.client !== 'acvpn') continue;
    const peer = summaries.find((candidate) => candidate.variant === summary.peer);
    if (peer === undefined) continue;
    const ratios = {};
    for (const metric of METRICS) {
      const mine = summary.metrics[metric.key];
      const theirs = peer.metrics[metric.key];
      ratios[metric.key] = mine !== null && theirs !== null && theirs.median !== 0 ? mine.median / theirs.median : null;
    }
    comparisons.push({ acvpn: summary.variant, openconnect: peer.variant, ratios });
  }
  return comparisons;
}

function formatNumber(value) {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function formatRange(range) {
  if (range === null) return 'n/a';
  return `${formatNumber(range.median)} (${formatNumber(range.min)}–${formatNumber(range.max)})`;
}

/** Renders the summaries and comparisons as a Markdown table, which also reads well in a terminal. */
export function renderTable(summaries, comparisons) {
  const header = ['variant', 'runs ok', ...METRICS.map((metric) => metric.label), 'MTU'];
  const rows = summaries.map((summary) => [
    summary.transport === 'dtls' && summary.dtlsSeenRuns < summary.okRuns
      ? `${summary.variant} (DTLS seen in ${summary.dtlsSeenRuns}/${summary.okRuns})`
      : summary.variant,
    `${summary.okRuns}/${summary.runs}`,
    ...METRICS.map((metric) => formatRange(summary.metrics[metric.key])),
    summary.mtu.join(', ') || 'n/a',
  ]);
  for (const comparison of comparisons) {
    rows.push([
      `ratio ${comparison.acvpn} / ${comparison.openconnect}`,
      '',
      ...METRICS.map((metric) => {
        const ratio = comparison.ratios[metric.key];
        return ratio === null ? 'n/a' : `${ratio.toFixed(2)}×`;
      }),
      '',
    ]);
  }

  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells) => `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  const separator = `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`;
  return [line(header), separator, ...rows.map(line)].join('\n');
}

/** Describes, in one sentence per metric and comparison, which variant wins and by how much. */
export function describeComparisons(comparisons) {
  const sentences = [];
  for (const comparison of comparisons) {
    for (const metric of METRICS) {
      const ratio = comparison.ratios[metric.key];
      if (ratio === null) continue;
      const acvpnWins = metric.better === 'higher' ? ratio > 1 : ratio < 1;
      const winner = acvpnWins ? comparison.acvpn : comparison.openconnect;
      const factor = ratio >= 1 ? ratio : 1 / ratio;
      const direction = metric.better === 'higher' ? 'higher' : 'lower';
      sentences.push(`${metric.label}: ${winner} is ${factor.toFixed(2)}× ${direction} (${comparison.acvpn} / ${comparison.openconnect} = ${ratio.toFixed(2)})`);
    }
  }
  return sentences;
}
