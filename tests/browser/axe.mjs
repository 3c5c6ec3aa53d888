// axe-core (WCAG 2.0, 2.1 and 2.2, levels A and AA) on a page as it is, in the light and the dark
// colour scheme, for the browser tests (tour.mjs, live.mjs, frontchannel.mjs). Each caller decides
// how a violation fails its step.

import { createRequire } from 'node:module';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

// One entry per scheme: { scheme, violations: [text naming the rule and the elements], passes }.
// The page is left in the light scheme.
export async function axeBothSchemes(page) {
  const results = [];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.addScriptTag({ path: AXE });
    const result = await page.evaluate((values) => globalThis.axe.run(document, { runOnly: { type: 'tag', values } }), TAGS);
    const violations = result.violations.map(
      (v) => `${v.id} (${v.impact}): ${v.help}; at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
    );
    results.push({ scheme, violations, passes: result.passes.length });
  }
  await page.emulateMedia({ colorScheme: 'light' });
  return results;
}

// Opens `url` in a new tab of `context` asking for `lang` (Accept-Language) and checks that the
// page says it is in that language (<html lang>); the caller audits and closes the tab.
export async function openInLanguage(context, url, lang) {
  const view = await context.newPage();
  await view.setExtraHTTPHeaders({ 'Accept-Language': `${lang};q=1, en;q=0.5` });
  await view.goto(url);
  const tag = await view.evaluate(() => document.documentElement.lang);
  if (tag !== lang) {
    await view.close();
    throw new Error(`${url} answered <html lang="${tag}"> to Accept-Language ${lang}`);
  }
  return view;
}
