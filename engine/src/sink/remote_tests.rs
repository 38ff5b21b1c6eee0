use super::*;

/// A warehouse on a fresh in-memory store, and the store to look into it.
fn warehouse(name: &str) -> (RemoteWarehouse, Arc<dyn ObjectStore>) {
    let url = Url::parse(&format!("memory://remote-tests-{name}/wh")).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    store::register_store(&url, Arc::clone(&store));
    (RemoteWarehouse::open(&url, None).unwrap(), store)
}

fn stage(w: &RemoteWarehouse, id: &str, files: &[&str]) {
    let dir = w.begin(id).unwrap();
    for file in files {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("{id}:{file}")).unwrap();
    }
}

fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let store = Arc::clone(store);
    let mut keys: Vec<String> = store::run(async move {
        store.list(None).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>().await.unwrap()
    });
    keys.sort();
    keys
}

fn put(store: &Arc<dyn ObjectStore>, key: &str) {
    let (store, key) = (Arc::clone(store), ObjectPath::from(key));
    store::run(async move { store.put(&key, b"x".to_vec().into()).await.unwrap() });
}

#[test]
fn publish_commits_keeps_the_replaced_load_and_removes_orphans() {
    let (w, store) = warehouse("publish");
    stage(&w, "L1", &["t/y=1/part-L1-0-00001.parquet", "_tables/t.json"]);
    w.publish("L1", &["t".into(), "empty".into()]).unwrap();
    let record = w.current().unwrap().unwrap();
    assert_eq!(record.load_id, "L1");
    assert_eq!(record.tables["t"], ["t/y=1/part-L1-0-00001.parquet"]);
    assert!(record.tables["empty"].is_empty());
    assert!(record.replaced.is_empty());

    // A crashed load's orphan part, and a foreign file that is not ours to delete.
    put(&store, "wh/t/y=2/part-L0-0-00001.parquet");
    put(&store, "wh/t/notes.txt");
    put(&store, "wh/_fhirhouse/snapshots/L0/_tables/t.json");
    // Orphans go only when older than the commit, by the second: let a second pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    stage(&w, "L2", &["t/y=1/part-L2-0-00001.parquet", "_tables/t.json"]);
    w.publish("L2", &["t".into()]).unwrap();
    // L1 is kept for the sessions reading it, with its commit record.
    assert_eq!(
        keys(&store),
        [
            "wh/_fhirhouse/current.json",
            "wh/_fhirhouse/snapshots/L1/_commit.json",
            "wh/_fhirhouse/snapshots/L1/_tables/t.json",
            "wh/_fhirhouse/snapshots/L2/_tables/t.json",
            "wh/t/notes.txt",
            "wh/t/y=1/part-L1-0-00001.parquet",
            "wh/t/y=1/part-L2-0-00001.parquet",
        ]
    );
    let replaced = w.current().unwrap().unwrap().replaced;
    assert_eq!(replaced.iter().map(|r| r.load_id.as_str()).collect::<Vec<_>>(), ["L1"]);
}

/// Makes every load `current.json` keeps look replaced two hours ago.
fn back_date(store: &Arc<dyn ObjectStore>) {
    let (reader, key) = (Arc::clone(store), ObjectPath::from("wh/_fhirhouse/current.json"));
    let bytes = store::run(async move { reader.get(&key).await.unwrap().bytes().await.unwrap() });
    let mut record: CommitRecord = serde_json::from_slice(&bytes).unwrap();
    let then = chrono::Utc::now() - chrono::Duration::hours(2);
    record.replaced.iter_mut().for_each(|r| r.replaced_at = then.to_rfc3339());
    let (writer, key) = (Arc::clone(store), ObjectPath::from("wh/_fhirhouse/current.json"));
    store::run(async move { writer.put(&key, serde_json::to_vec(&record).unwrap().into()).await.unwrap() });
}

#[test]
fn replaced_loads_are_kept_for_the_grace_period_and_until_the_next_load() {
    let (w, store) = warehouse("grace");
    for id in ["L1", "L2", "L3"] {
        stage(&w, id, &[&format!("t/part-{id}-0-00001.parquet"), "_tables/t.json"]);
        w.publish(id, &["t".into()]).unwrap();
    }
    let replaced: Vec<String> = w.current().unwrap().unwrap().replaced.into_iter().map(|r| r.load_id).collect();
    assert_eq!(replaced, ["L2", "L1"], "both replaced just now");
    assert_eq!(keys(&store).iter().filter(|k| k.ends_with(".parquet")).count(), 3);

    // Two hours later: L4 keeps L3 (the load it replaces) and drops L1 and L2.
    back_date(&store);
    let w = reopen(&w);
    stage(&w, "L4", &["t/part-L4-0-00001.parquet", "_tables/t.json"]);
    w.publish("L4", &["t".into()]).unwrap();
    assert_eq!(
        keys(&store),
        [
            "wh/_fhirhouse/current.json",
            "wh/_fhirhouse/snapshots/L3/_commit.json",
            "wh/_fhirhouse/snapshots/L3/_tables/t.json",
            "wh/_fhirhouse/snapshots/L4/_tables/t.json",
            "wh/t/part-L3-0-00001.parquet",
            "wh/t/part-L4-0-00001.parquet",
        ]
    );

    // A kept load whose record cannot be read: no data file is removed, not even an orphan.
    let (deleter, key) = (Arc::clone(&store), ObjectPath::from("wh/_fhirhouse/snapshots/L3/_commit.json"));
    store::run(async move { deleter.delete(&key).await.unwrap() });
    put(&store, "wh/t/part-L0-0-00001.parquet");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    stage(&w, "L5", &["t/part-L5-0-00001.parquet", "_tables/t.json"]);
    w.publish("L5", &["t".into()]).unwrap();
    let parts: Vec<String> = keys(&store).into_iter().filter(|k| k.ends_with(".parquet")).collect();
    assert_eq!(
        parts,
        [
            "wh/t/part-L0-0-00001.parquet",
            "wh/t/part-L3-0-00001.parquet",
            "wh/t/part-L4-0-00001.parquet",
            "wh/t/part-L5-0-00001.parquet"
        ]
    );
}

#[test]
fn retention_keeps_the_previous_load_and_the_recently_replaced_ones() {
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now - chrono::Duration::minutes(minutes)).to_rfc3339();
    let replaced = |id: &str, replaced_at: String| Replaced { load_id: id.into(), replaced_at };
    let previous = CommitRecord {
        load_id: "L4".into(),
        tables: BTreeMap::new(),
        replaced: vec![
            replaced("L3", at(1)),
            replaced("L2", at(59)),
            replaced("L1", at(61)),
            replaced("L0", "?".into()),
        ],
    };
    let (kept, dropped) = retention(Some(&previous), "L5", now);
    let kept: Vec<&str> = kept.iter().map(|r| r.load_id.as_str()).collect();
    assert_eq!((kept, dropped), (vec!["L4", "L3", "L2"], vec!["L1".to_owned(), "L0".to_owned()]));
    assert_eq!(retention(None, "L1", now), (Vec::new(), Vec::new()));
}

#[test]
fn a_failed_upload_publishes_nothing_and_leaves_nothing() {
    let (w, store) = warehouse("failed");
    stage(&w, "L1", &["t/part-L1-0-00001.parquet"]);
    w.publish("L1", &["t".into()]).unwrap();
    let before = keys(&store);

    stage(&w, "L2", &["t/part-L2-0-00001.parquet"]);
    // A dangling link cannot be read: the upload fails part-way.
    #[cfg(unix)]
    std::os::unix::fs::symlink("/nonexistent", w.begin("L2").unwrap().join("t/part-L2-0-00002.parquet")).unwrap();
    let err = w.publish("L2", &["t".into()]).unwrap_err().to_string();
    assert!(err.contains("part-L2-0-00002.parquet"), "{err}");
    assert_eq!(w.current().unwrap().unwrap().load_id, "L1");
    assert_eq!(keys(&store), before);
}

#[test]
fn reports_and_dead_letters_are_uploaded_and_staging_removed() {
    let (w, store) = warehouse("report");
    stage(&w, "L1", &["t/part-L1-0-00001.parquet"]);
    let dead = w.dead_letter_dir("L1");
    fs::create_dir_all(&dead).unwrap();
    fs::write(dead.join("000-a.ndjson"), "{}\n").unwrap();
    let url = w.save_report("L1", b"{}".to_vec()).unwrap();
    assert_eq!(url, "memory://remote-tests-report/wh/_fhirhouse/loads/L1.json");
    assert_eq!(keys(&store), ["wh/_dead_letter/L1/000-a.ndjson", "wh/_fhirhouse/loads/L1.json"]);
    assert!(!w.staging.join("L1").exists());
}

#[test]
fn large_files_go_up_in_parts() {
    let (w, store) = warehouse("multipart");
    let dir = w.begin("L1").unwrap().join("t");
    fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..(MULTIPART_THRESHOLD as usize + 3 * PART_BYTES / 2)).map(|i| (i % 253) as u8).collect();
    fs::write(dir.join("part-L1-0-00001.parquet"), &data).unwrap();
    w.publish("L1", &["t".into()]).unwrap();
    let got = store::run(async move {
        store.get(&ObjectPath::from("wh/t/part-L1-0-00001.parquet")).await.unwrap().bytes().await.unwrap()
    });
    assert!(got.as_ref() == data.as_slice());
}

/// Another handle on the warehouse of `w`, as a second `fhirhouse load` would open it.
fn reopen(w: &RemoteWarehouse) -> RemoteWarehouse {
    RemoteWarehouse::open(&w.url, None).unwrap()
}

#[test]
fn of_two_overlapping_loads_the_second_to_commit_fails_naming_the_first_and_removes_its_files() {
    let (first, store) = warehouse("race");
    stage(&first, "L0", &["t/part-L0-0-00001.parquet"]);
    first.publish("L0", &["t".into()]).unwrap();
    // Both begin while L0 is published.
    let (a, b) = (reopen(&first), reopen(&first));
    stage(&a, "LA", &["t/part-LA-0-00001.parquet", "_tables/t.json"]);
    stage(&b, "LB", &["t/part-LB-0-00001.parquet", "_tables/t.json"]);
    b.publish("LB", &["t".into()]).unwrap();
    let published = keys(&store);

    let err = a.publish("LA", &["t".into()]).unwrap_err().to_string();
    assert!(err.contains("current.json") && err.contains("load LB was published while this load ran"), "{err}");
    assert_eq!(first.current().unwrap().unwrap().load_id, "LB");
    assert_eq!(keys(&store), published, "LA's uploads are removed, LB's files untouched");
    assert!(published.contains(&"wh/t/part-LB-0-00001.parquet".to_owned()), "{published:?}");

    // The same when the warehouse was empty as both began (a create, not an update).
    let (empty, store) = warehouse("race-empty");
    let other = reopen(&empty);
    stage(&empty, "L1", &["t/part-L1-0-00001.parquet"]);
    stage(&other, "L2", &["t/part-L2-0-00001.parquet"]);
    empty.publish("L1", &["t".into()]).unwrap();
    let err = other.publish("L2", &["t".into()]).unwrap_err().to_string();
    assert!(err.contains("load L1 was published while this load ran"), "{err}");
    assert_eq!(keys(&store), ["wh/_fhirhouse/current.json", "wh/t/part-L1-0-00001.parquet"]);
}

#[test]
fn the_sweep_spares_files_newer_than_the_commit() {
    let (w, store) = warehouse("sweep-time");
    stage(&w, "L1", &["t/part-L1-0-00001.parquet"]);
    w.publish("L1", &["t".into()]).unwrap();
    let record = w.current().unwrap().unwrap();
    // Files of a load still running (or an orphan): whether they go depends on their age.
    put(&store, "wh/t/part-L2-0-00001.parquet");
    put(&store, "wh/_fhirhouse/snapshots/L2/_tables/t.json");
    let now = chrono::Utc::now();

    w.sweep(&record, None, &[], Some(now - chrono::Duration::seconds(5)));
    assert_eq!(keys(&store).len(), 4, "newer than the commit: kept");
    w.sweep(&record, None, &[], None);
    assert_eq!(keys(&store).len(), 4, "commit time unknown: kept");
    w.sweep(&record, None, &[], Some(now + chrono::Duration::seconds(5)));
    assert_eq!(keys(&store), ["wh/_fhirhouse/current.json", "wh/t/part-L1-0-00001.parquet"], "older: removed");
}

#[test]
fn a_store_without_conditional_puts_publishes_unconditionally() {
    // The local file system's store cannot update conditionally (`NotImplemented`).
    let dir = tempfile::tempdir().unwrap();
    let url = Url::parse(&format!("memory://remote-tests-local{}/wh", dir.path().display())).unwrap();
    store::register_store(&url, Arc::new(object_store::local::LocalFileSystem::new()));
    let w = RemoteWarehouse::open(&url, None).unwrap();
    for id in ["L1", "L2"] {
        stage(&w, id, &[&format!("t/part-{id}-0-00001.parquet")]);
        w.publish(id, &["t".into()]).unwrap();
    }
    assert_eq!(w.current().unwrap().unwrap().load_id, "L2");
    // L1 is kept for its readers.
    assert!(dir.path().join("wh/t/part-L1-0-00001.parquet").exists());
    assert!(dir.path().join("wh/t/part-L2-0-00001.parquet").exists());
}
