"""The /v1 route table: Fly paths -> operation names -> handlers over the emulator services."""

from __future__ import annotations

from controlplane.fly.emulator import apps, leases, machines, orglist, volumes
from controlplane.fly.emulator import exec as machine_exec
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import bad_request
from controlplane.fly.emulator.http import Call, Reply, Router

NONCE_HEADER = "fly-machine-lease-nonce"
APP = "/v1/apps/{app_name}"
MACHINE = APP + "/machines/{machine_id}"


def build_router(world: World) -> Router:
    router = Router()

    def nonce(call: Call) -> str | None:
        return call.request.headers.get(NONCE_HEADER) or None

    # --- apps ---
    async def create_app(call: Call) -> Reply:
        return Reply(201, apps.create_app(world, call.request.json_object()))

    async def list_apps(call: Call) -> Reply:
        return Reply(200, apps.list_apps(world, call.request.query_one("org_slug")))

    async def get_app(call: Call) -> Reply:
        app = apps.get_app(world, call.param("app_name"))
        apps.require_app_visible(world, app)
        return Reply(200, apps.render_app(world, app))

    async def delete_app(call: Call) -> Reply:
        apps.delete_app(world, call.param("app_name"), call.request.flag("force"))
        return Reply(202)

    router.add("POST", "/v1/apps", "create_app", "org", create_app)  # 1 req/s, burst 3 per org
    router.add("GET", "/v1/apps", "list_apps", "org", list_apps)
    router.add("GET", APP, "get_app", "app", get_app)
    router.add("DELETE", APP, "delete_app", "org", delete_app)

    # --- secrets ---
    async def list_secrets(call: Call) -> Reply:
        raw = call.request.query_one("min_version") or call.request.query_one("version")
        try:
            min_version = int(raw) if raw else None
        except ValueError as exc:
            raise bad_request("invalid min_version") from exc
        return Reply(200, apps.list_secrets(world, call.param("app_name"), min_version))

    async def set_secrets(call: Call) -> Reply:
        return Reply(200, apps.set_secrets(world, call.param("app_name"), call.request.json_object()))

    async def get_secret(call: Call) -> Reply:
        return Reply(200, apps.get_secret(world, call.param("app_name"), call.param("secret_name")))

    async def set_secret(call: Call) -> Reply:
        body = call.request.json_object()
        return Reply(201, apps.set_secret(world, call.param("app_name"), call.param("secret_name"), body))

    async def delete_secret(call: Call) -> Reply:
        return Reply(200, apps.delete_secret(world, call.param("app_name"), call.param("secret_name")))

    router.add("GET", APP + "/secrets", "list_secrets", "app", list_secrets)
    router.add("POST", APP + "/secrets", "set_secrets", "app", set_secrets)
    router.add("GET", APP + "/secrets/{secret_name}", "get_secret", "app", get_secret)
    router.add("POST", APP + "/secrets/{secret_name}", "set_secret", "app", set_secret)
    router.add("DELETE", APP + "/secrets/{secret_name}", "delete_secret", "app", delete_secret)

    # --- volumes ---
    async def create_volume(call: Call) -> Reply:
        return Reply(200, volumes.create_volume(world, call.param("app_name"), call.request.json_object()))

    async def list_volumes(call: Call) -> Reply:
        return Reply(200, volumes.list_volumes(world, call.param("app_name")))

    async def get_volume(call: Call) -> Reply:
        volume = volumes.get_volume(world, call.param("app_name"), call.param("volume_id"))
        return Reply(200, volumes.render_volume(volume))

    async def delete_volume(call: Call) -> Reply:
        return Reply(200, volumes.delete_volume(world, call.param("app_name"), call.param("volume_id")))

    async def extend_volume(call: Call) -> Reply:
        body = call.request.json_object()
        return Reply(200, volumes.extend_volume(world, call.param("app_name"), call.param("volume_id"), body))

    router.add("POST", APP + "/volumes", "create_volume", "app", create_volume)
    router.add("GET", APP + "/volumes", "list_volumes", "app", list_volumes)
    router.add("GET", APP + "/volumes/{volume_id}", "get_volume", "app", get_volume)
    router.add("DELETE", APP + "/volumes/{volume_id}", "delete_volume", "app", delete_volume)
    router.add("PUT", APP + "/volumes/{volume_id}/extend", "extend_volume", "app", extend_volume)

    # --- machines ---
    async def create_machine(call: Call) -> Reply:
        machine = machines.create_machine(world, call.param("app_name"), call.request.json_object())
        return Reply(200, machines.render_machine(world, machine, with_nonce=True))

    async def list_machines(call: Call) -> Reply:
        return Reply(200, machines.list_machines(world, call.param("app_name"), call.request.query))

    async def get_machine(call: Call) -> Reply:
        machine = machines.find_machine(world, call.param("app_name"), call.param("machine_id"), reading=True)
        return Reply(
            200, machines.render_machine(world, machine, include_lease=call.request.flag("include_leases"))
        )

    async def update_machine(call: Call) -> Reply:
        machine = machines.update_machine(
            world, call.param("app_name"), call.param("machine_id"), call.request.json_object(), nonce(call)
        )
        return Reply(200, machines.render_machine(world, machine))

    async def destroy_machine(call: Call) -> Reply:
        force = call.request.flag("force") or call.request.flag("kill")
        return Reply(
            200,
            machines.destroy_machine(
                world, call.param("app_name"), call.param("machine_id"), force, nonce(call)
            ),
        )

    async def start_machine(call: Call) -> Reply:
        return Reply(
            200, machines.start_machine(world, call.param("app_name"), call.param("machine_id"), nonce(call))
        )

    async def stop_machine(call: Call) -> Reply:
        return Reply(
            200,
            machines.stop_machine(
                world, call.param("app_name"), call.param("machine_id"), call.request.json(), nonce(call)
            ),
        )

    async def suspend_machine(call: Call) -> Reply:
        return Reply(
            200,
            machines.suspend_machine(world, call.param("app_name"), call.param("machine_id"), nonce(call)),
        )

    async def restart_machine(call: Call) -> Reply:
        return Reply(
            200,
            machines.restart_machine(world, call.param("app_name"), call.param("machine_id"), nonce(call)),
        )

    async def cordon(call: Call) -> Reply:
        return Reply(
            200,
            machines.set_cordon(world, call.param("app_name"), call.param("machine_id"), True, nonce(call)),
        )

    async def uncordon(call: Call) -> Reply:
        return Reply(
            200,
            machines.set_cordon(world, call.param("app_name"), call.param("machine_id"), False, nonce(call)),
        )

    async def wait_machine(call: Call) -> Reply:
        request = call.request
        states = machines.parse_wait_states(request.query.get("state", []))
        timeout = machines.parse_wait_timeout(request.query_one("timeout"))
        version = request.query_one("version") or request.query_one("instance_id")
        result = await machines.wait_machine(
            world, call.param("app_name"), call.param("machine_id"), states, version, timeout
        )
        return Reply(200, result)

    async def list_events(call: Call) -> Reply:
        return Reply(
            200,
            machines.list_events(
                world, call.param("app_name"), call.param("machine_id"), call.request.query_one("limit")
            ),
        )

    async def exec_machine(call: Call) -> Reply:
        return Reply(
            200,
            machine_exec.exec_machine(
                world,
                call.param("app_name"),
                call.param("machine_id"),
                call.request.json_object(),
                nonce(call),
            ),
        )

    async def list_versions(call: Call) -> Reply:
        return Reply(200, machines.list_versions(world, call.param("app_name"), call.param("machine_id")))

    router.add("POST", APP + "/machines", "create_machine", "app", create_machine)
    router.add("GET", APP + "/machines", "list_machines", "app", list_machines)
    router.add("GET", MACHINE, "get_machine", "machine", get_machine)
    router.add("POST", MACHINE, "update_machine", "machine", update_machine)
    router.add("DELETE", MACHINE, "destroy_machine", "machine", destroy_machine)
    router.add("POST", MACHINE + "/start", "start_machine", "machine", start_machine)
    router.add("POST", MACHINE + "/stop", "stop_machine", "machine", stop_machine)
    router.add("POST", MACHINE + "/suspend", "suspend_machine", "machine", suspend_machine)
    router.add("POST", MACHINE + "/restart", "restart_machine", "machine", restart_machine)
    router.add("POST", MACHINE + "/cordon", "cordon_machine", "machine", cordon)
    router.add("POST", MACHINE + "/uncordon", "uncordon_machine", "machine", uncordon)
    router.add("GET", MACHINE + "/wait", "wait_machine", "machine", wait_machine)
    router.add("GET", MACHINE + "/events", "list_events", "machine", list_events)
    router.add("GET", MACHINE + "/versions", "list_versions", "machine", list_versions)
    router.add("POST", MACHINE + "/exec", "exec_machine", "machine", exec_machine)  # action: 1/s, burst 3

    # --- leases ---
    async def acquire_lease(call: Call) -> Reply:
        machine = machines.find_machine(
            world, call.param("app_name"), call.param("machine_id"), allow_destroyed=False
        )
        body = call.request.json_object(required=False)
        return Reply(201, leases.acquire(world, machine, body, call.request.query_one("ttl"), nonce(call)))

    async def release_lease(call: Call) -> Reply:
        machine = machines.find_machine(world, call.param("app_name"), call.param("machine_id"))
        return Reply(200, leases.release(world, machine, nonce(call)))

    async def show_lease(call: Call) -> Reply:
        machine = machines.find_machine(world, call.param("app_name"), call.param("machine_id"))
        return Reply(200, leases.show(world, machine))

    router.add("POST", MACHINE + "/lease", "acquire_lease", "machine", acquire_lease)
    router.add("DELETE", MACHINE + "/lease", "release_lease", "machine", release_lease)
    router.add("GET", MACHINE + "/lease", "show_lease", "machine", show_lease)

    # --- metadata ---
    async def get_metadata(call: Call) -> Reply:
        return Reply(200, machines.get_metadata(world, call.param("app_name"), call.param("machine_id")))

    async def replace_metadata(call: Call) -> Reply:
        machines.replace_metadata(
            world, call.param("app_name"), call.param("machine_id"), call.request.json_object()
        )
        return Reply(204)

    async def get_metadata_key(call: Call) -> Reply:
        return Reply(
            200,
            machines.get_metadata_key(
                world, call.param("app_name"), call.param("machine_id"), call.param("key")
            ),
        )

    async def set_metadata_key(call: Call) -> Reply:
        machines.set_metadata_key(
            world,
            call.param("app_name"),
            call.param("machine_id"),
            call.param("key"),
            call.request.json_object(),
        )
        return Reply(204)

    async def delete_metadata_key(call: Call) -> Reply:
        machines.delete_metadata_key(
            world, call.param("app_name"), call.param("machine_id"), call.param("key")
        )
        return Reply(204)

    router.add("GET", MACHINE + "/metadata", "get_metadata", "machine", get_metadata)
    router.add("PUT", MACHINE + "/metadata", "update_metadata", "machine", replace_metadata)
    router.add("PATCH", MACHINE + "/metadata", "update_metadata", "machine", replace_metadata)
    router.add("GET", MACHINE + "/metadata/{key}", "get_metadata_key", "machine", get_metadata_key)
    router.add("POST", MACHINE + "/metadata/{key}", "set_metadata_key", "machine", set_metadata_key)
    router.add("DELETE", MACHINE + "/metadata/{key}", "delete_metadata_key", "machine", delete_metadata_key)

    # --- org ---
    async def list_org_machines(call: Call) -> Reply:
        return Reply(200, orglist.list_org_machines(world, call.param("org_slug"), call.request.query))

    router.add("GET", "/v1/orgs/{org_slug}/machines", "list_org_machines", "org", list_org_machines)
    return router
