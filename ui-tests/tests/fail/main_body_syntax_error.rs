#[covalent::main]
async fn main() {
    let message = "hello" +;
    println!("{message}");
}
