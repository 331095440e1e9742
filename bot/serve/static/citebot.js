// citebot's page: ask /v1/ask, show the quote with its marked sentence. Article text is only ever set as text
// (textContent, text nodes), never parsed as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const said = document.body.dataset;
  let articles = 1;
  let passages = [];
  let shown = 0;

  function phrase(kind) {
    const many = articles === 1 || $("scope").value ? "One" : "Many";
    return said[kind + many];
  }

  function showPassage() {
    const p = passages[shown];
    const quote = $("quote");
    quote.replaceChildren();
    const text = p.text;
    let at = 0;
    for (const [start, end] of p.highlight) {
      quote.append(document.createTextNode(text.slice(at, start)));
      const mark = document.createElement("mark");
      mark.textContent = text.slice(start, end);
      quote.append(mark);
      at = end;
    }
    quote.append(document.createTextNode(text.slice(at)));
    $("title").textContent = p.article.title || p.article.source;
    $("date").textContent = p.article.date ? "· " + p.article.date : "";
    $("place").textContent = "· paragraph " + p.paragraph + " of " + p.paragraphs + (p.page ? ", page " + p.page : "");
    $("before").replaceChildren();
    $("after").replaceChildren();
    $("passage").hidden = false;
    $("more").hidden = p.paragraphs < 2;
    $("next").hidden = shown + 1 >= passages.length;
  }

  // A paragraph around the quote: its text as text, and where it stands.
  function paragraphAround(item, total) {
    const block = document.createElement("p");
    block.textContent = item.text;
    const where = document.createElement("small");
    where.textContent = "paragraph " + item.paragraph + " of " + total + (item.page ? ", page " + item.page : "");
    block.append(where);
    return block;
  }

  async function moreContext() {
    const p = passages[shown];
    const url = "/v1/articles/" + p.article.id + "/context?paragraph=" + p.paragraph;
    try {
      const response = await fetch(url);
      const reply = await response.json();
      if (!response.ok) return fail(reply.error || "citebot could not show more (HTTP " + response.status + ")");
      const here = reply.context.find((item) => item.paragraph === p.paragraph);
      if (!here || here.text !== p.text) return fail("The article has changed since this answer; ask again.");
      for (const item of reply.context) {
        if (item.paragraph < p.paragraph) $("before").append(paragraphAround(item, reply.paragraphs));
        if (item.paragraph > p.paragraph) $("after").append(paragraphAround(item, reply.paragraphs));
      }
      $("more").hidden = true;
      $("quote").focus();
    } catch (error) {
      fail("citebot cannot be reached; check the connection and ask again");
    }
  }

  function show(reply) {
    $("answer").setAttribute("aria-busy", "false");
    $("error").hidden = true;
    $("answer").hidden = false;
    passages = reply.verdict === "unanswered" ? [] : reply.passages;
    shown = 0;
    if (reply.verdict === "answered") {
      $("said").textContent = "";
      $("said").hidden = true;
    } else {
      $("said").textContent = phrase(reply.verdict === "uncertain" ? "uncertain" : "notFound");
      $("said").hidden = false;
    }
    if (passages.length) {
      showPassage();
    } else {
      $("passage").hidden = true;
      $("more").hidden = true;
      $("next").hidden = true;
    }
  }

  function fail(message) {
    $("answer").setAttribute("aria-busy", "false");
    $("answer").hidden = true;
    $("error").textContent = message;
    $("error").hidden = false;
  }

  $("ask").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("answer").setAttribute("aria-busy", "true");
    const asked = { question: $("question").value, k: 3 };
    if ($("scope").value) asked.in = [Number($("scope").value)];
    try {
      const response = await fetch("/v1/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(asked),
      });
      const reply = await response.json();
      if (!response.ok) return fail(reply.error || "citebot could not answer (HTTP " + response.status + ")");
      show(reply);
    } catch (error) {
      fail("citebot cannot be reached; check the connection and ask again");
    }
  });
  $("more").addEventListener("click", moreContext);
  $("next").addEventListener("click", () => {
    shown += 1;
    showPassage();
    if ($("next").hidden) $("quote").focus();
  });

  fetch("/v1/articles").then((r) => (r.ok ? r.json() : [])).then((list) => {
    articles = list.length || 1;
    if (list.length === 1) $("library").textContent = list[0].title || "the article";
    else if (list.length > 1) $("library").textContent = "a library of " + list.length + " articles";
    if (list.length > 1) {
      // new Option(text, value) sets the title as text, never as markup.
      for (const a of list) $("scope").append(new Option(a.id + ". " + (a.title || a.source), String(a.id)));
      $("scope-row").hidden = false;
    }
  }).catch(() => {});
})();
