// A pipeline's DAG: the hovered or focused step's facts are shown beside the graph (without
// script, every step's facts are listed).
(function () {
  "use strict";
  const list = document.querySelector("[data-step-facts-list]");
  const nodes = document.querySelectorAll(".dag-node[data-facts]");
  if (!list || nodes.length === 0) return;
  list.classList.add("one-at-a-time");
  list.setAttribute("aria-live", "polite");

  function show(node) {
    nodes.forEach((other) => other.classList.toggle("is-active", other === node));
    list.querySelectorAll(".step-facts").forEach((facts) => {
      facts.classList.toggle("is-active", facts.id === node.dataset.facts);
    });
  }

  nodes.forEach((node) => {
    node.addEventListener("mouseenter", () => show(node));
    node.addEventListener("focus", () => show(node));
  });
  show(nodes[0]);
})();
