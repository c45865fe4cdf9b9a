// Charts for the trends and circularity pages, drawn with the vendored uPlot.
// Decision colours match gateway.css: REUSE green, REMANUFACTURE blue, RECYCLE red, REVIEW amber.
(function () {
  const COLOURS = {NONE: "#5f6b7a", REUSE: "#1b8a3e", REMANUFACTURE: "#1f5fbf", RECYCLE: "#b3261e", REVIEW: "#e6a100"};
  const GRADE_COLOURS = ["#1b8a3e", "#7cb342", "#e6a100", "#ef6c00", "#b3261e", "#6a1b9a", "#37474f"];

  function epoch(t) {  // 'YYYY-MM-DDTHH' or 'YYYY-MM-DD' in UTC
    const iso = t.length === 13 ? t + ":00:00Z" : t + "T00:00:00Z";
    return Date.parse(iso) / 1000;
  }
  function width(el) { return Math.max(320, el.clientWidth || 600); }
  function empty(el) { el.innerHTML = '<p class="muted">No data in this period.</p>'; }

  function plot(el, series, columns, opts) {
    if (!columns[0].length) return empty(el);
    return new uPlot(Object.assign({width: width(el), height: 280, series: [{}].concat(series),
      axes: [{}, {label: opts.yLabel || ""}],
      // one bucket alone would stretch the time axis over years: pad it by an hour either side
      scales: {x: {time: true, range: (u, min, max) => min === max ? [min - 3600, max + 3600] : [min, max]}}},
      opts.extra || {}), columns, el);
  }

  function decisions(el, rows) {
    const names = ["REUSE", "REMANUFACTURE", "RECYCLE", "REVIEW"];
    const x = rows.map(r => epoch(r.t));
    const series = names.map(n => ({label: n, stroke: COLOURS[n], width: 3, points: {show: true}}));
    plot(el, series, [x].concat(names.map(n => rows.map(r => r[n] || 0))), {yLabel: "cores per hour"});
  }

  function grades(el, points) {
    const gradeSet = new Set();
    points.forEach(p => Object.keys(p.grades).forEach(g => gradeSet.add(g)));
    const gs = Array.from(gradeSet).sort((a, b) => a - b);
    const x = points.map(p => epoch(p.t));
    const series = gs.map((g, i) => ({label: "grade " + g, stroke: GRADE_COLOURS[i % GRADE_COLOURS.length], width: 2, points: {show: true}}));
    plot(el, series, [x].concat(gs.map(g => points.map(p => p.grades[g] || 0))), {yLabel: "cores"});
  }

  function impact(el, rows) {
    const x = rows.map(r => epoch(r.t));
    const series = [
      {label: "material kept kg", stroke: "#1b8a3e", width: 3, scale: "kg", points: {show: true}},
      {label: "CO2e avoided kg", stroke: "#1f5fbf", width: 3, scale: "kg", points: {show: true}},
    ];
    // unknown impact stays a gap (null), never zero
    plot(el, series, [x, rows.map(r => r.material_kept_kg), rows.map(r => r.co2e_avoided_kg)],
      {yLabel: "kg", extra: {axes: [{}, {scale: "kg", label: "kg"}]}});
  }

  window.remanCharts = {decisions, grades, impact};
})();
