// A worker that fetches, decodes and clips the base map (see mapview.js, baseFeatures).

import { countriesIn } from "./basemap.js";

self.onmessage = async (e) => {
  const { url, box } = e.data;
  try {
    const topo = await (await fetch(url)).json();
    self.postMessage({ features: countriesIn(topo, box) });
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
