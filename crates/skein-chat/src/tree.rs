//! The message tree: the path from the root to a leaf, each message's siblings, and the newest
//! leaf under a message. Pure functions over the rows of one conversation, so the history of a
//! conversation costs one query however many branches it has.

use std::collections::HashMap;

/// What the tree needs of a message.
pub trait Node {
    /// The message's id.
    fn id(&self) -> &str;
    /// Its parent's id (`None` for a first message).
    fn parent(&self) -> Option<&str>;
}

/// The messages of one conversation, indexed by id and by parent. Children keep the order of
/// the input (oldest first, as ids are time-ordered).
pub struct Tree<'a, N: Node> {
    by_id: HashMap<&'a str, &'a N>,
    children: HashMap<&'a str, Vec<&'a N>>,
    roots: Vec<&'a N>,
}

impl<'a, N: Node> Tree<'a, N> {
    /// Indexes `nodes`, which must be in creation order.
    pub fn new(nodes: &'a [N]) -> Self {
        let mut by_id = HashMap::with_capacity(nodes.len());
        let mut children: HashMap<&'a str, Vec<&'a N>> = HashMap::new();
        let mut roots = Vec::new();
        for node in nodes {
            by_id.insert(node.id(), node);
            match node.parent() {
                Some(parent) => children.entry(parent).or_default().push(node),
                None => roots.push(node),
            }
        }
        Tree {
            by_id,
            children,
            roots,
        }
    }

    /// The message with this id.
    pub fn get(&self, id: &str) -> Option<&'a N> {
        self.by_id.get(id).copied()
    }

    /// The messages from the root down to `leaf`, root first. Empty when `leaf` is unknown; a
    /// parent that is missing (or a cycle, which the API never creates) ends the walk.
    pub fn path_to(&self, leaf: &str) -> Vec<&'a N> {
        let mut path = Vec::new();
        let mut next = self.get(leaf);
        while let Some(node) = next {
            if path.len() > self.by_id.len() {
                break;
            }
            path.push(node);
            next = node.parent().and_then(|p| self.get(p));
        }
        path.reverse();
        path
    }

    /// The children of `parent` (the roots for `None`), oldest first.
    pub fn children(&self, parent: Option<&str>) -> &[&'a N] {
        match parent {
            Some(parent) => self.children.get(parent).map(Vec::as_slice).unwrap_or(&[]),
            None => &self.roots,
        }
    }

    /// `node`'s siblings including itself, oldest first, and its position among them.
    pub fn siblings(&self, node: &N) -> (Vec<&'a str>, usize) {
        let ids: Vec<&'a str> = self
            .children(node.parent())
            .iter()
            .map(|n| n.id())
            .collect();
        let index = ids.iter().position(|id| *id == node.id()).unwrap_or(0);
        (ids, index)
    }

    /// The leaf reached from `from` by always taking the newest child: where a branch the user
    /// switches to continues.
    pub fn newest_leaf(&self, from: &'a str) -> &'a str {
        let mut at = from;
        for _ in 0..=self.by_id.len() {
            match self.children(Some(at)).last() {
                Some(child) => at = child.id(),
                None => break,
            }
        }
        at
    }

    /// The newest leaf of the whole conversation (for a conversation that lost its pointer).
    pub fn newest_root_leaf(&self) -> Option<&'a str> {
        self.children(None)
            .last()
            .map(|root| self.newest_leaf(root.id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct M(&'static str, Option<&'static str>);

    impl Node for M {
        fn id(&self) -> &str {
            self.0
        }
        fn parent(&self) -> Option<&str> {
            self.1
        }
    }

    fn sample() -> Vec<M> {
        // u1 ─ a1
        //    └ a2 ─ u2 ─ a3
        // u1b (edited first message) ─ a4
        vec![
            M("u1", None),
            M("a1", Some("u1")),
            M("a2", Some("u1")),
            M("u2", Some("a2")),
            M("a3", Some("u2")),
            M("u1b", None),
            M("a4", Some("u1b")),
        ]
    }

    #[test]
    fn the_path_runs_from_the_root_to_the_leaf() {
        let nodes = sample();
        let tree = Tree::new(&nodes);
        let path: Vec<&str> = tree.path_to("a3").iter().map(|n| n.id()).collect();
        assert_eq!(path, ["u1", "a2", "u2", "a3"]);
        assert!(tree.path_to("nope").is_empty());
    }

    #[test]
    fn siblings_are_counted_among_the_same_parent_and_at_the_root() {
        let nodes = sample();
        let tree = Tree::new(&nodes);
        let a2 = tree.get("a2").unwrap();
        assert_eq!(tree.siblings(a2), (vec!["a1", "a2"], 1));
        let u1b = tree.get("u1b").unwrap();
        assert_eq!(tree.siblings(u1b), (vec!["u1", "u1b"], 1));
        let u2 = tree.get("u2").unwrap();
        assert_eq!(tree.siblings(u2), (vec!["u2"], 0));
    }

    #[test]
    fn switching_to_a_message_continues_down_its_newest_children() {
        let nodes = sample();
        let tree = Tree::new(&nodes);
        assert_eq!(tree.newest_leaf("u1"), "a3");
        assert_eq!(tree.newest_leaf("a1"), "a1");
        assert_eq!(tree.newest_root_leaf(), Some("a4"));
    }
}
