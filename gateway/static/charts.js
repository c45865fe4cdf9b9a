// Charts for the trends and circularity pages, drawn with the vendored uPlot.
// Decision colours match gateway.css: REUSE green, REMANUFACTURE blue, RECYCLE red, REVIEW amber.
(function () {
  const COLOURS = {NONE: "#5f6b7a", REUSE: "#1b8a3e", REMANUFACTURE: "#1f5fbf", RECYCLE: "#b3261e", REVIEW: "#e6a100"};
  const GRADE_COLOURS = ["#1b8a3e", "#7cb342", "#e6a100", "#ef6c00", "#b3261e", "#6a1b9a", "#37474f"];

  const HOUR_S = 3600, DAY_S = 86400;
  function epoch(t) {  // 'YYYY-MM-DDTHH' or 'YYYY-MM-DD' in UTC
    const iso = t.length === 13 ? t + ":00:00Z" : t + "T00:00:00Z";
    return Date.parse(iso) / 1000;
  }
  // Labels in the page's language and the gateway's time zone, from the page's #chart-text
  function text() {
    const el = document.getElementById("chart-text");
    return Object.assign({noData: "No data in this period.", coresPerHour: "cores per hour", cores: "cores",
      grade: "grade", materialKept: "material kept kg", co2eAvoided: "CO2e avoided kg", names: {}, zone: null},
      el ? JSON.parse(el.textContent) : {});
  }
  function zoned(extra) {
    const zone = text().zone;
    return zone ? Object.assign({tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), zone)}, extra) : extra;
  }
  function width(el) { return Math.max(320, el.clientWidth || 600); }
  function empty(el) { el.innerHTML = '<p class="muted"></p>'; el.firstChild.textContent = text().noData; }

  // The server sends every bucket of the chosen period (empty ones as zero), so the first and last
  // bucket are the period's bounds; a period of one bucket is that bucket wide.
  function period(keys) {
    const min = epoch(keys[0]), max = epoch(keys[keys.length - 1]);
    return [min, max > min ? max : min + (keys[0].length === 13 ? HOUR_S : DAY_S)];
  }

  // The x scale never leaves the period: uPlot widens a single bucket to 1000 days before any range
  // function sees it, so the range is clamped to the period, not padded. Inside it a drag zooms.
  // The chart is kept on its element (el.chart) for whoever needs to read it, tests included.
  function plot(el, keys, series, columns, opts) {
    if (!keys.length) return empty(el);
    const [first, last] = period(keys);
    el.chart = new uPlot(Object.assign({width: width(el), height: 280, series: [{}].concat(series),
      axes: [{}, {label: opts.yLabel || ""}],
      scales: {x: {time: true, range: (u, min, max) => [Math.max(min, first), Math.min(max, last)]}}},
      zoned(opts.extra || {})), [keys.map(epoch)].concat(columns), el);
    return el.chart;
  }

  function decisions(el, rows) {
    const names = ["REUSE", "REMANUFACTURE", "RECYCLE", "REVIEW"];
    const series = names.map(n => ({label: text().names[n] || n, stroke: COLOURS[n], width: 3, points: {show: true}}));
    plot(el, rows.map(r => r.t), series, names.map(n => rows.map(r => r[n] || 0)), {yLabel: text().coresPerHour});
  }

  function grades(el, points) {
    const gradeSet = new Set();
    points.forEach(p => Object.keys(p.grades).forEach(g => gradeSet.add(g)));
    const gs = Array.from(gradeSet).sort((a, b) => a - b);
    const series = gs.map((g, i) => ({label: text().grade + " " + g, stroke: GRADE_COLOURS[i % GRADE_COLOURS.length], width: 2, points: {show: true}}));
    plot(el, points.map(p => p.t), series, gs.map(g => points.map(p => p.grades[g] || 0)), {yLabel: text().cores});
  }

  function impact(el, rows) {
    const series = [
      {label: text().materialKept, stroke: "#1b8a3e", width: 3, scale: "kg", points: {show: true}},
      {label: text().co2eAvoided, stroke: "#1f5fbf", width: 3, scale: "kg", points: {show: true}},
    ];
    // unknown impact stays a gap (null), never zero; an empty bucket is zero (the server says so)
    plot(el, rows.map(r => r.t), series, [rows.map(r => r.material_kept_kg), rows.map(r => r.co2e_avoided_kg)],
      {yLabel: "kg", extra: {axes: [{}, {scale: "kg", label: "kg"}]}});
  }

  window.remanCharts = {decisions, grades, impact};
})();
