//! Who a template belongs to: the team that built it, or the server (every team's, changed
//! only by the operator's team), and what a team may build from.

use super::{TemplateError, Templates};

impl Templates {
    /// Names the operator's team (see [`Templates::is_operator`]).
    pub fn set_operator(&self, team: bulkhead_store::TeamId) {
        let _ = self.operator.set(team);
    }

    /// Whether `team` is the operator's: the server's own templates, images and host paths
    /// are its alone.
    pub fn is_operator(&self, team: &bulkhead_store::TeamId) -> bool {
        self.operator.get() == Some(team)
    }

    /// The built templates `team` may build `FROM` (`bulkhead-template/<name>`): its own and
    /// the server's; `None` (every one) for the operator.
    pub fn template_bases_for(
        &self,
        team: &bulkhead_store::TeamId,
    ) -> Option<std::collections::BTreeSet<String>> {
        if self.is_operator(team) {
            return None;
        }
        Some(
            self.list()
                .into_iter()
                .filter(|r| r.visible_to(team.as_str()))
                .map(|r| r.id)
                .collect(),
        )
    }

    /// Who a build of `name` by `team` (`None`: the server itself) leaves owning it: a
    /// rebuild keeps the owner it had (the server's own templates stay everyone's), a new
    /// name becomes the building team's.
    ///
    /// # Errors
    /// [`TemplateError::TakenByAnotherTeam`] when the name is another team's (a template
    /// or a snapshot).
    pub fn owner_for(
        &self,
        name: &str,
        team: Option<&bulkhead_store::TeamId>,
    ) -> Result<Option<String>, TemplateError> {
        let Some(team) = team else {
            return Ok(None);
        };
        let server_owned = |name: &str| {
            if self.is_operator(team) {
                Ok(None)
            } else {
                Err(TemplateError::ServerTemplate(name.to_string()))
            }
        };
        if let Some(prev) = self.get(name) {
            return match prev.owner() {
                Some(o) if o != team.as_str() => {
                    Err(TemplateError::TakenByAnotherTeam(name.to_string()))
                }
                Some(_) if prev.snapshot.is_some() => {
                    Err(TemplateError::TakenByAnotherTeam(name.to_string()))
                }
                Some(owner) => Ok(Some(owner.to_string())),
                // The server's own: every team's sandboxes use it, only the operator
                // changes it.
                None => server_owned(name),
            };
        }
        // A name the manager serves without a record is one of the server's root
        // filesystems (`base` before it is built): it stays the server's.
        if self.manager.template_config(name).is_some() {
            return server_owned(name);
        }
        Ok(Some(team.as_str().to_string()))
    }
}
