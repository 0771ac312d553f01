// Helpers the report's scripts share. Packed data arrive base64(gzip(JSON)) in inert script elements;
// every string is written with textContent, never as HTML.
"use strict";
const evalsuite = {
  async unpack(source) {
    const bytes = Uint8Array.from(atob(source.textContent.trim()), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  },
  el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  },
};
