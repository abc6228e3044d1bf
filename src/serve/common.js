// What both embedded pages share: building elements and a captioned image.
"use strict";

function element(tag, attrs, text) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function figure(src, caption, cls) {
  const box = element("div");
  box.appendChild(element("img", { src, alt: caption, class: cls || "" }));
  box.appendChild(element("div", { class: "caption" }, caption));
  return box;
}
