"""A permissive RBAC implementation for tests of the open-source ZenML server.

Loaded by `tests/zenml/server.py --rbac` through
`ZENML_SERVER_RBAC_IMPLEMENTATION_SOURCE=allow_all_rbac.AllowAllRBAC` (this directory on
PYTHONPATH). With any RBAC implementation configured, `server_config().rbac_enabled` is
true, so the open-source "only admin users can … without RBAC enabled" checks are
skipped, and every permission question is answered here: everything is allowed to every
authenticated account. That lets a service-account API key manage API keys, as a
service account with a suitable role can on ZenML Pro. Never use outside tests.
"""

from typing import Dict, List, Optional, Set, Tuple

from zenml.zen_server.rbac.models import Action, Resource
from zenml.zen_server.rbac.rbac_interface import RBACInterface


class AllowAllRBAC(RBACInterface):
    """Allows every action on every resource."""

    def check_permissions(self, user, resources: Set[Resource], action: Action) -> Dict[Resource, bool]:
        return {resource: True for resource in resources}

    def list_allowed_resource_ids(self, user, resource: Resource, action: Action) -> Tuple[bool, List[str]]:
        return True, []

    def update_resource_membership(
        self,
        sharing_user,
        resource: Resource,
        actions: List[Action],
        user_id: Optional[str] = None,
        team_id: Optional[str] = None,
    ) -> None:
        return None

    def delete_resources(self, resources: List[Resource]) -> None:
        return None
