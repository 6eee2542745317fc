//! A scope guard for multi-step operations: each completed step pushes the action that undoes
//! it; if the operation returns early (an error, a panic), the actions run in reverse order,
//! and a successful operation disarms the guard.

/// The undo actions of the steps completed so far.
pub(crate) struct Undo<'a> {
    actions: Vec<Box<dyn FnOnce() + 'a>>,
}

impl<'a> Undo<'a> {
    pub(crate) fn new() -> Self {
        Self {
            actions: Vec::new(),
        }
    }

    /// Registers the undo action of a step that just completed.
    pub(crate) fn push(&mut self, action: impl FnOnce() + 'a) {
        self.actions.push(Box::new(action));
    }

    /// The operation succeeded: keep everything.
    pub(crate) fn disarm(mut self) {
        self.actions.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        while let Some(action) = self.actions.pop() {
            action();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::Undo;

    #[test]
    fn undoes_in_reverse_unless_disarmed() {
        let log = RefCell::new(Vec::new());
        {
            let mut undo = Undo::new();
            undo.push(|| log.borrow_mut().push(1));
            undo.push(|| log.borrow_mut().push(2));
        }
        assert_eq!(*log.borrow(), [2, 1]);
        let mut undo = Undo::new();
        undo.push(|| log.borrow_mut().push(3));
        undo.disarm();
        assert_eq!(*log.borrow(), [2, 1]);
    }
}
