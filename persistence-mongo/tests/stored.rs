//! What `MongoRepository` writes returns without reading the document back:
//! the entity with its timestamps truncated to milliseconds. That is only
//! right if everything else converts to BSON and back unchanged; this pins
//! it, without a server, for every field type the conformance suite stores.
use bson::Document;
use chrono::{DateTime, Utc};
use persistence_core::conformance::entities::{AllTypes, Nested, sample_all_types};
use persistence_core::{Entity, Record, TimestampPrecision};
use persistence_mongo::codec::{from_document, to_document};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("timestamp")
        .with_timezone(&Utc)
}

fn through_bson(e: &AllTypes) -> AllTypes {
    let mut record = Record::from_entity(e).expect("record");
    record.fit_timestamps(TimestampPrecision::Millis);
    let expected: AllTypes = record.clone().into_entity().expect("entity");
    let doc: Document = to_document(AllTypes::meta(), &record).expect("document");
    let bytes = bson::to_vec(&doc).expect("encode");
    let back: Document = bson::from_slice(&bytes).expect("decode");
    let read = from_document::<AllTypes>(&back).expect("from document");
    assert_eq!(read, expected, "BSON changed more than the timestamps");
    read
}

#[test]
fn only_timestamps_change_on_the_way_through_bson() {
    let mut samples = vec![sample_all_types(1), sample_all_types(2)];
    let mut e = sample_all_types(3);
    e.ts = at("1969-12-31T23:59:59.999999999Z");
    e.opt_ts = Some(at("2024-05-06T07:08:09.123456789Z"));
    e.dec = "0.1234567890123456789012345678".parse().expect("dec");
    e.f64v = -0.0;
    e.f32v = f32::MIN_POSITIVE;
    e.i64v = i64::MIN;
    e.i16v = i16::MAX;
    e.s = "\u{0}quote' \"$where\" é".into();
    e.nested = Nested {
        name: "2024-05-06T07:08:09.123456789Z".into(),
        inner: persistence_core::conformance::entities::Inner { x: -1, label: None },
        list: vec![],
    };
    samples.push(e);
    for d in ["-7922816251426433759354.395033", "1.5000", "0.0000000001"] {
        let mut e = sample_all_types(4);
        e.dec = d.parse().expect("dec");
        samples.push(e);
    }
    for e in &samples {
        let read = through_bson(e);
        assert_eq!(read.ts, TimestampPrecision::Millis.truncate(e.ts));
        assert_eq!(
            read.dec.to_string(),
            e.dec.to_string(),
            "decimal scale kept"
        );
        assert_eq!(read.f64v.to_bits(), e.f64v.to_bits(), "sign of zero kept");
    }
}
