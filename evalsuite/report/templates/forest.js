// Forest plots: render.py gives each label line room by a generous estimate of its width; should a font
// still draw a line wider than that room, it is squeezed into it rather than cut off.
"use strict";
evalsuite.fitLabels = function () {
  document.querySelectorAll("svg.forest-plot tspan[data-room]").forEach((line) => {
    const room = Number(line.dataset.room);
    line.removeAttribute("textLength");
    if (line.getComputedTextLength() > room) {
      line.setAttribute("textLength", String(room));
      line.setAttribute("lengthAdjust", "spacingAndGlyphs");
    }
  });
};
evalsuite.fitLabels();
