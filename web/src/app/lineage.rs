//! A model's lineage drawn as an SVG graph: ancestors above, descendants below, one row per
//! generation, every edge labelled with the royalty share the child owes the parent, every
//! model a link to its page.

use std::collections::{BTreeMap, BTreeSet};

use maud::{html, Markup};

use super::format;

/// One declared parent → child edge.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub(crate) parent: String,
    pub(crate) child: String,
    pub(crate) royalty_bps: i64,
}

const BOX_W: i64 = 150;
const BOX_H: i64 = 40;
const GAP_X: i64 = 30;
const GAP_Y: i64 = 60;

/// Edges drawn at most: a lineage wider than this is cut (the page says how many were left
/// out), so one page never lays out thousands of boxes on a server thread.
pub(crate) const MAX_EDGES: usize = 120;

/// Draws `model` with its `ancestors`' and `descendants`' edges (as `lineage` answers them,
/// nearest first; at most [`MAX_EDGES`] of them together); `names` labels the boxes.
pub(crate) fn svg(
    model: &str,
    ancestors: &[Edge],
    descendants: &[Edge],
    names: &BTreeMap<String, String>,
) -> Markup {
    let keep = MAX_EDGES.min(ancestors.len());
    let ancestors = &ancestors[..keep];
    let descendants = &descendants[..(MAX_EDGES - keep).min(descendants.len())];
    // Generation of each model relative to `model`: a parent one row above its child (the
    // highest such row for a model reached twice), a child one row below its parent (the
    // lowest). Each pass settles at least one more generation; the lineage is a DAG, so
    // as many passes as edges suffice.
    let mut level: BTreeMap<String, i64> = BTreeMap::from([(model.to_string(), 0)]);
    for _ in 0..=(ancestors.len() + descendants.len()) {
        let mut changed = false;
        for e in ancestors {
            if let Some(&c) = level.get(&e.child) {
                if level.get(&e.parent).is_none_or(|&p| p > c - 1) {
                    level.insert(e.parent.clone(), c - 1);
                    changed = true;
                }
            }
        }
        for e in descendants {
            if let Some(&p) = level.get(&e.parent) {
                if level.get(&e.child).is_none_or(|&c| c < p + 1) {
                    level.insert(e.child.clone(), p + 1);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let edges: Vec<&Edge> = ancestors.iter().chain(descendants).collect();
    let top = level.values().copied().min().unwrap_or(0);
    let mut rows: BTreeMap<i64, Vec<&String>> = BTreeMap::new();
    for (id, l) in &level {
        rows.entry(l - top).or_default().push(id);
    }
    let widest = rows.values().map(Vec::len).max().unwrap_or(1) as i64;
    let width = widest * (BOX_W + GAP_X) + GAP_X;
    let height = rows.len() as i64 * (BOX_H + GAP_Y) - GAP_Y + 2 * 20;
    let mut at: BTreeMap<&String, (i64, i64)> = BTreeMap::new();
    for (row, ids) in &rows {
        let offset = (width - (ids.len() as i64 * (BOX_W + GAP_X) - GAP_X)) / 2;
        for (i, id) in ids.iter().enumerate() {
            at.insert(
                id,
                (
                    offset + i as i64 * (BOX_W + GAP_X),
                    20 + row * (BOX_H + GAP_Y),
                ),
            );
        }
    }
    let unique: BTreeSet<(&String, &String)> =
        edges.iter().map(|e| (&e.parent, &e.child)).collect();
    html! {
        svg #lineage-graph xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height)
            aria-label={ "Lineage of model " (model) ": " (unique.len()) " declared edges" } {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for e in edges {
                @if let (Some(&(px, py)), Some(&(cx, cy))) = (at.get(&e.parent), at.get(&e.child)) {
                    @let (x1, y1, x2, y2) = (px + BOX_W / 2, py + BOX_H, cx + BOX_W / 2, cy);
                    g.edge data-parent=(e.parent) data-child=(e.child) data-royalty-bps=(e.royalty_bps) {
                        line x1=(x1) y1=(y1) x2=(x2) y2=(y2) marker-end="url(#arrow)" {}
                        text.share x=((x1 + x2) / 2 + 6) y=((y1 + y2) / 2 + 4) { (format::bps(e.royalty_bps)) }
                    }
                }
            }
            @for (id, (x, y)) in &at {
                a href={ "/models/" (id) } data-node=(id) {
                    rect.node.current[*id == model] x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
                    text x=(x + BOX_W / 2) y=(y + 17) text-anchor="middle" { "#" (id) }
                    text.name x=(x + BOX_W / 2) y=(y + 32) text-anchor="middle" {
                        (truncate(names.get(*id).map(String::as_str).unwrap_or(""), 20))
                    }
                }
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.chars().count() > max {
        true => text.chars().take(max - 1).collect::<String>() + "…",
        false => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(parent: &str, child: &str, royalty_bps: i64) -> Edge {
        Edge {
            parent: parent.into(),
            child: child.into(),
            royalty_bps,
        }
    }

    #[test]
    fn ancestors_sit_above_descendants_below_and_every_edge_is_labelled() {
        // 1 → 3 ← 2, 3 → 4, 3 → 5; drawn for model 3.
        let up = [edge("1", "3", 1000), edge("2", "3", 500)];
        let down = [edge("3", "4", 250), edge("3", "5", 0)];
        let names = BTreeMap::from([("3".to_string(), "<b>chat</b>".to_string())]);
        let svg = svg("3", &up, &down, &names).into_string();
        for (parent, child, bps, share) in [
            ("1", "3", 1000, "10%"),
            ("2", "3", 500, "5%"),
            ("3", "4", 250, "2.5%"),
        ] {
            let mark =
                format!(r#"data-parent="{parent}" data-child="{child}" data-royalty-bps="{bps}""#);
            let at = svg
                .find(&mark)
                .unwrap_or_else(|| panic!("no edge {parent}→{child}: {svg}"));
            assert!(svg[at..].contains(share));
        }
        assert_eq!(svg.matches("<g class=\"edge\"").count(), 4);
        // Names are escaped, never markup.
        assert!(svg.contains("&lt;b&gt;chat&lt;/b&gt;") && !svg.contains("<b>chat"));
        // Rows: the parents' y is above the model's, the children's below.
        let y = |id: &str| -> i64 {
            let at = svg.find(&format!(r#"data-node="{id}""#)).unwrap();
            let rest = &svg[at..];
            let y = rest.find(" y=\"").unwrap() + 4;
            rest[y..y + rest[y..].find('"').unwrap()].parse().unwrap()
        };
        assert!(y("1") < y("3") && y("2") == y("1") && y("4") > y("3") && y("5") == y("4"));
    }

    #[test]
    fn a_diamond_puts_each_model_on_its_longest_path_and_wide_lineages_are_cut() {
        // 1 → 2 → 4, 1 → 4 (a diamond above 4); drawn for 4: 1 sits two rows up, not one.
        let up = [
            edge("2", "4", 100),
            edge("1", "4", 100),
            edge("1", "2", 100),
        ];
        let drawn = svg("4", &up, &[], &BTreeMap::new()).into_string();
        let y = |id: &str| -> i64 {
            let at = drawn.find(&format!(r#"data-node="{id}""#)).unwrap();
            let rest = &drawn[at..];
            let y = rest.find(" y=\"").unwrap() + 4;
            rest[y..y + rest[y..].find('"').unwrap()].parse().unwrap()
        };
        assert!(y("1") < y("2") && y("2") < y("4"), "{drawn}");
        // Thousands of children: at most MAX_EDGES are drawn.
        let down: Vec<Edge> = (0..5_000)
            .map(|i| edge("4", &format!("{}", 10 + i), 0))
            .collect();
        let wide = svg("4", &up, &down, &BTreeMap::new()).into_string();
        assert_eq!(wide.matches("<g class=\"edge\"").count(), MAX_EDGES);
    }
}
