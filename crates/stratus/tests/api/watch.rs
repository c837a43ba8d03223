//! Watching instances (`?watch=true`): the listing a watch begins with, changes as they
//! happen, resuming from a version, and what a watch refuses.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use stratus_client::{InstanceWatch, WatchOptions};
use stratus_types::{InstanceWatchEvent, WatchEventType};

const WITHIN: Duration = Duration::from_secs(10);

/// The next event of `watch`, failing after [`WITHIN`].
async fn next(watch: &mut InstanceWatch) -> InstanceWatchEvent {
    tokio::time::timeout(WITHIN, watch.next())
        .await
        .expect("no event within the wait")
        .expect("the watch failed")
        .expect("the watch ended")
}

/// Reads events until one about `id` has `status` (or, with `None`, is `DELETED`); returns
/// every event read, which must all be of `id`'s selection.
async fn until(
    watch: &mut InstanceWatch,
    id: &str,
    status: Option<&str>,
) -> Vec<InstanceWatchEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next(watch).await;
        let done = match (&event.object, status) {
            (Some(i), Some(want)) => i.id.as_str() == id && i.lifecycle.status.as_str() == want,
            (_, None) => {
                event.event_type == WatchEventType::Deleted
                    && event.self_link.as_deref().is_some_and(|l| l.ends_with(id))
            }
            _ => false,
        };
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn ids(events: &[InstanceWatchEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.object.as_ref().map(|i| i.id.to_string()))
        .collect()
}

#[tokio::test]
async fn a_watch_lists_its_selection_then_streams_its_changes_and_resumes_from_a_version() {
    let region = TestRegion::start().await;
    let c = &region.client;
    for (id, team) in [("red-1", "red"), ("blue-1", "blue")] {
        let created = c
            .post(
                INSTANCES,
                json!({"id": id, "type": TYPE_SMALL, "labels": {"team": team}}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    }
    c.wait_status("red-1", "RUNNING", WITHIN).await;
    let typed = region.typed();
    let instances = typed.instances("local-1", "default");
    let red = WatchOptions {
        label_selector: Some("team=red".into()),
        ..WatchOptions::default()
    };
    let mut watch = instances.watch(&red).await.unwrap();

    // The listing: the red instance as it is, then a bookmark.
    let first = next(&mut watch).await;
    assert_eq!(first.event_type, WatchEventType::Added);
    let listed = first.object.expect("ADDED carries the instance");
    assert_eq!(listed.id.as_str(), "red-1");
    assert_eq!(listed.lifecycle.status.as_str(), "RUNNING");
    let bookmark = next(&mut watch).await;
    assert_eq!(bookmark.event_type, WatchEventType::Bookmark);
    assert!(bookmark.object.is_none());

    // A create in the selection: ADDED at PROVISIONING, then MODIFIED up to RUNNING, in order.
    let created = c
        .post(
            INSTANCES,
            json!({"id": "red-2", "type": TYPE_SMALL, "labels": {"team": "red"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    c.post(
        INSTANCES,
        json!({"id": "blue-2", "type": TYPE_SMALL, "labels": {"team": "blue"}}),
    )
    .await;
    let events = until(&mut watch, "red-2", Some("RUNNING")).await;
    assert_eq!(events[0].event_type, WatchEventType::Added);
    assert_eq!(
        events[0].object.as_ref().unwrap().lifecycle.status.as_str(),
        "PROVISIONING"
    );
    assert!(
        events[1..]
            .iter()
            .all(|e| e.event_type == WatchEventType::Modified),
        "{events:?}"
    );
    assert!(
        ids(&events).iter().all(|id| id == "red-2"),
        "the blue instance reached a red watch: {:?}",
        ids(&events)
    );
    let versions: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            let (epoch, seq) = e.resource_version.split_once('.').unwrap();
            (epoch.parse().unwrap(), seq.parse().unwrap())
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let resume_from = events[0].resource_version.clone();

    // A label change moves an instance out of the selection no further; a delete ends it.
    let patched = c
        .patch(
            &format!("{INSTANCES}/red-1"),
            json!({"labels": {"team": "red", "tier": "web"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let events = until(&mut watch, "red-1", Some("RUNNING")).await;
    assert_eq!(events.last().unwrap().event_type, WatchEventType::Modified);
    assert_eq!(
        events
            .last()
            .unwrap()
            .object
            .as_ref()
            .unwrap()
            .labels
            .get("tier"),
        Some("web")
    );
    assert!(
        c.delete(&format!("{INSTANCES}/red-2"))
            .await
            .status
            .is_success()
    );
    let events = until(&mut watch, "red-2", None).await;
    let deleted = events.last().unwrap();
    assert_eq!(
        deleted.object.as_ref().map(|i| i.id.as_str()),
        Some("red-2"),
        "DELETED carries the instance as last seen"
    );

    // Resuming from a version replays what followed it, without a listing.
    let mut resumed = instances
        .watch(&WatchOptions {
            resource_version: Some(resume_from),
            ..red.clone()
        })
        .await
        .unwrap();
    let replayed = until(&mut resumed, "red-2", None).await;
    assert!(
        replayed
            .iter()
            .all(|e| e.event_type != WatchEventType::Bookmark
                && e.event_type != WatchEventType::Added),
        "a resumed watch listed again: {replayed:?}"
    );
    assert!(ids(&replayed).iter().any(|id| id == "red-1"));

    // One instance alone, by id.
    let mut one = instances
        .watch(&WatchOptions {
            id: Some("blue-1".into()),
            ..WatchOptions::default()
        })
        .await
        .unwrap();
    let only = next(&mut one).await;
    assert_eq!(only.object.unwrap().id.as_str(), "blue-1");
    assert_eq!(next(&mut one).await.event_type, WatchEventType::Bookmark);
}

#[tokio::test]
async fn a_version_the_region_never_gave_ends_the_watch_with_410_and_bad_parameters_are_named() {
    let region = TestRegion::start().await;
    let typed = region.typed();
    let instances = typed.instances("local-1", "default");
    let mut stale = instances
        .watch(&WatchOptions {
            resource_version: Some("7.123456789".into()),
            ..WatchOptions::default()
        })
        .await
        .unwrap();
    let error = next(&mut stale).await;
    assert_eq!(error.event_type, WatchEventType::Error);
    let info = error.error.expect("ERROR carries an error");
    assert_eq!(info.code, 410);
    assert!(info.message.contains("list again"), "{}", info.message);
    assert!(
        stale.next().await.unwrap().is_none(),
        "the stream ends after ERROR"
    );

    let c = &region.client;
    for (query, field) in [
        ("watch=yes", "watch"),
        ("watch=true&resourceVersion=abc", "resourceVersion"),
        ("watch=true&pageToken=x", "pageToken"),
        ("watch=true&fieldSelector=name=x", "fieldSelector"),
        ("watch=true&timeoutSeconds=0", "timeoutSeconds"),
        ("resourceVersion=1.2", "resourceVersion"),
        ("fieldSelector=id=x", "fieldSelector"),
    ] {
        let reply = c.get(&format!("{INSTANCES}?{query}")).await;
        reply.assert_error(400);
        assert_eq!(reply.field(), field, "{query}: {:#}", reply.body);
    }

    // A caller of another organization is refused a watch as it is refused the list.
    let mut outsider = c.clone();
    outsider.token = Some(region.sign(&region.user_claims("other-org", &["admin"])));
    let list = outsider.get(INSTANCES).await;
    let watch = outsider.get(&format!("{INSTANCES}?watch=true")).await;
    assert_ne!(list.status, StatusCode::OK);
    assert_eq!(watch.status, list.status, "{:#}", watch.body);
}
